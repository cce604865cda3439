/* The review workspace's read-only panels: the page's scores against the ground truth, the
   whole-page diff, each stage's full text, and what each stage did (engine, time, tokens, and
   how the OCR prepared the scan). */
"use strict";

(function () {
  const h = window.histocr;
  const { el } = h;

  function pageCerLine(cer) {
    const source = cer.source === "page"
      ? "against this page's own ground truth"
      : "against this page's share of the document's ground truth (aligned automatically)";
    return el("div", { className: "scores", "aria-label": "Page scores against the ground truth" },
      el("span", { title: "Character error rate: the share of the ground truth's characters that were read wrong, added or missed" },
        "Page CER ", el("b", {}, h.pct(cer.cer))),
      el("span", { title: "The same, comparing only lower-case letters a–z and digits, as the published benchmark numbers do" },
        "CER normalized ", el("b", {}, h.pct(cer.cer_normalized))),
      el("span", { className: "subtle" }, cer.cer_distance + " errors in " +
        cer.cer_reference_length + " characters, " + source),
      cer.unsure_lines ? el("span", {
        className: "diff-unsure-note",
        title: "Lines that found no clear counterpart in the ground truth: their comparison is a guess",
      }, "⚠ " + cer.unsure_lines + " line" + (cer.unsure_lines === 1 ? "" : "s") + " with an unsure alignment") : null);
  }

  /** The page's scores above its lines, or why there are none. */
  function renderScores(box, result) {
    if (result.gt_cer) {
      h.replaceChildren(box, pageCerLine(result.gt_cer));
      return;
    }
    const estimate = typeof result.estimated_cer === "number"
      ? " Estimated error without it: " + h.estimatePct(result.estimated_cer) +
        " (from the engine's confidence and how plausible the words look)."
      : "";
    h.replaceChildren(box, el("p", { className: "small subtle" },
      "No ground truth for this page, so no CER and no diff." + estimate +
      " Attach a transcription to the document on the project page to compare."));
  }

  function diffList(result, ws) {
    const lines = result.lines.filter((line) => line.diff && (line.text.trim() || line.gt_text));
    if (!lines.length) {
      return el("p", { className: "subtle" },
        "No line-by-line diff: the text stage gave no lines with their positions for this page.");
    }
    return el("ol", { className: "diff-lines" }, lines.map((line) => el("li", {
      value: String(line.position + 1), // numbered as the page's lines, blank ones left out
      className: "diff-line" + (line.gt_unsure ? " unsure" : ""),
      title: line.gt_unsure ? "Alignment unsure: most of this line found no counterpart in the ground truth" : null,
      dataset: { lineId: String(line.id) },
    },
    line.gt_unsure ? el("span", { className: "diff-unsure-note" }, "⚠ unsure ") : null,
    h.workspace.diffOps(ws.normalized ? line.diff.normalized : line.diff.raw))));
  }

  /** The whole page's diff in one list (a click on a line goes to it in the Lines tab). */
  function renderDiffTab(panel, result, ws, rerender) {
    if (!result.gt_cer) {
      h.replaceChildren(panel);
      return;
    }
    const toggle = el("input", {
      type: "checkbox", id: "diff-normalized", checked: ws.normalized,
      onchange: (event) => {
        ws.normalized = event.target.checked;
        document.getElementById("lines-normalized").checked = ws.normalized;
        rerender();
      },
    });
    const list = diffList(result, ws);
    list.addEventListener("click", (event) => {
      const li = event.target.closest("li[data-line-id]");
      if (li) ws.select(li.dataset.lineId, { reveal: true, focus: true, tab: "lines" });
    });
    h.replaceChildren(panel,
      pageCerLine(result.gt_cer),
      el("p", { className: "small" },
        el("label", { className: "check" }, toggle, " Normalized, as the metric compares (lower-case, ASCII letters and digits only)")),
      el("p", { className: "small subtle diff-legend" }, "Text against ground truth: ",
        el("ins", { className: "diff-ins" }, "underlined"), " only in the text, ",
        el("del", { className: "diff-del" }, "struck through"), " only in the ground truth, ",
        el("span", { className: "diff-sub" }, el("del", {}, "ground truth"), el("ins", {}, "text")),
        " substituted."),
      list);
  }

  /** Each text stage's whole text, and the ground truth the page is compared with. */
  function renderTexts(panel, result, titles) {
    const parts = [];
    for (const stage of result.stages.filter((s) => s.stage !== "extract")) {
      parts.push(el("h3", {}, (titles[stage.stage] || stage.stage) + " (" + stage.engine + ")"),
        stage.error ? el("p", { className: "error-text small" }, stage.error) : null,
        stage.text ? el("pre", { className: "page-text", tabindex: "0", lang: "de" }, stage.text)
          : el("p", { className: "subtle" }, stage.status === "done" ? "(no text on this page)"
            : "No text yet: the stage is " + stage.status + "."));
    }
    if (result.ground_truth !== null && result.ground_truth !== undefined) {
      parts.push(el("h3", {}, "Ground truth"),
        el("pre", { className: "page-text", tabindex: "0", lang: "de" }, result.ground_truth || "(empty)"));
    } else if (result.ground_truth_aligned !== null && result.ground_truth_aligned !== undefined) {
      parts.push(el("h3", {}, "Ground truth (this page's share of the document's)"),
        el("pre", { className: "page-text", tabindex: "0", lang: "de" },
          result.ground_truth_aligned || "(nothing of the document's ground truth aligned to this page)"));
    }
    if (result.lines.some((line) => line.edited)) {
      parts.unshift(el("p", { className: "small subtle" },
        "These are the texts as the engines gave them; corrections are in the Lines tab and in the downloads."));
    }
    h.replaceChildren(panel, parts.length ? parts : el("p", { className: "subtle" }, "No text stage has run on this page yet."));
  }

  /** How the OCR prepared the scan, in words. */
  function layoutFacts(layout) {
    if (!layout) return null;
    const facts = [];
    if (layout.rotate) facts.push(["Turned", layout.rotate + "° (the scan was sideways or upside down)"]);
    if (layout.crop) facts.push(["Read area", layout.crop.join(", ") + " (x0, y0, x1, y1 in scan pixels)"]);
    if (layout.angle) facts.push(["Straightened", layout.angle + "°"]);
    if (layout.scale && layout.scale !== 1) facts.push(["Enlarged", "× " + layout.scale + " (small print is read better larger)"]);
    if (layout.line_pitch) facts.push(["Line spacing", layout.line_pitch + " px"]);
    if (!facts.length) return null;
    return el("dl", { className: "kv small" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function stagesTable(result, titles) {
    if (!result.stages.length) return el("p", { className: "subtle" }, "No stage has been scheduled for this page yet.");
    const layout = result.stages.find((s) => s.page_layout);
    return [el("table", {},
      el("thead", {}, el("tr", {},
        el("th", {}, "Stage"), el("th", {}, "Engine"), el("th", {}, "Status"),
        el("th", { className: "num", title: "Tries, counting retries after a failure" }, "Attempts"),
        el("th", { className: "num" }, "Time"),
        el("th", { className: "num", title: "Tokens sent to and received from a language model" }, "Tokens in / out"))),
      el("tbody", {}, result.stages.map((s) => el("tr", {},
        el("td", {}, titles[s.stage] || s.stage),
        el("td", {}, s.engine, s.model ? el("div", { className: "small subtle" }, s.model) : null),
        el("td", {}, h.badge(s.status), s.error ? el("div", { className: "small error-text" }, s.error) : null),
        el("td", { className: "num" }, String(s.attempts)),
        el("td", { className: "num" }, typeof s.latency_s === "number" ? s.latency_s.toFixed(1) + " s" : "—"),
        el("td", { className: "num" }, s.tokens_in === null && s.tokens_out === null
          ? "—" : (s.tokens_in ?? "—") + " / " + (s.tokens_out ?? "—")))))),
    layout ? el("h3", {}, "How the OCR prepared the scan") : null,
    layout ? layoutFacts(layout.page_layout) : null];
  }

  h.workspace = Object.assign(h.workspace || {}, { renderScores, renderDiffTab, renderTexts, stagesTable });
})();
