/* Document page: each page's scan beside the run's text for it, its stages, scores and records. */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api } = h;
  const root = document.getElementById("document");
  const links = Array.from(document.querySelectorAll(".page-nav a.page-link"));
  if (!links.length) {
    // Not ingested yet: reload once ingest has finished (or failed).
    if (h.BUSY_DOCUMENT.includes(root.dataset.documentStatus)) {
      h.poll(async () => {
        const doc = await api("/documents/" + root.dataset.documentId);
        if (h.BUSY_DOCUMENT.includes(doc.status)) return true;
        window.location.reload();
        return false;
      }, 2000).start();
    }
    return;
  }

  const runId = root.dataset.runId;
  const fields = JSON.parse(root.dataset.fields || "[]");
  const STAGE_TITLES = { ocr: "OCR", correct: "Post-correction", extract: "Extraction" };
  const ACTIVE = ["pending", "queued", "running"];
  const pages = links.map((a) => ({
    id: a.dataset.pageId, number: Number(a.dataset.number),
    width: a.dataset.width, height: a.dataset.height, link: a,
  }));
  let current = 0;
  let generation = 0; // a newer page view makes the older one's pending answers moot
  let chosenTab = null;
  let timer = null;

  /* ---------- text tabs ---------- */

  function scoresLine(scores) {
    if (!scores) return null;
    const item = (label, value) => el("span", {}, label + " ", el("b", {}, h.pct(value)));
    return el("div", { className: "scores", "aria-label": "Scores against the ground truth" },
      item("CER", scores.cer), item("CER normalized", scores.cer_normalized),
      item("WER", scores.wer), item("WER normalized", scores.wer_normalized));
  }

  /* ---------- diff against the ground truth ---------- */

  let normalizedDiff = false; // raw by default; the choice stays while paging

  function pageCerLine(cer) {
    const source = cer.source === "page"
      ? "against this page's own ground truth"
      : "against this page's share of the document's ground truth (aligned automatically)";
    return el("div", { className: "scores", "aria-label": "Page scores against the ground truth" },
      el("span", {}, "Page CER ", el("b", {}, h.pct(cer.cer))),
      el("span", {}, "CER normalized ", el("b", {}, h.pct(cer.cer_normalized))),
      el("span", { className: "subtle" }, cer.cer_distance + " errors in " +
        cer.cer_reference_length + " characters, " + source),
      cer.unsure_lines ? el("span", { className: "diff-unsure-note" },
        "⚠ " + cer.unsure_lines + " line" + (cer.unsure_lines === 1 ? "" : "s") +
        " with an unsure alignment") : null);
  }

  function diffOps(ops) {
    // Marked by more than colour: insertions underlined, deletions struck through.
    return ops.map((op) => {
      if (op.op === "equal") return op.gt;
      if (op.op === "insert") {
        return el("ins", { className: "diff-ins", title: "in the OCR, not in the ground truth" }, op.ocr);
      }
      if (op.op === "delete") {
        return el("del", { className: "diff-del", title: "in the ground truth, missing from the OCR" }, op.gt);
      }
      return el("span", { className: "diff-sub", title: "ground truth “" + op.gt + "” read as “" + op.ocr + "”" },
        el("del", {}, op.gt), el("ins", {}, op.ocr));
    });
  }

  function diffList(result) {
    const lines = result.lines.filter((line) => line.diff && (line.text.trim() || line.gt_text));
    if (!lines.length) {
      return el("p", { className: "subtle" },
        "No line-by-line diff: the text stage gave no lines with their positions for this page.");
    }
    return el("ol", { className: "diff-lines" }, lines.map((line) => el("li", {
      value: String(line.position + 1), // numbered as the OCR's lines, blank ones left out
      className: "diff-line" + (line.gt_unsure ? " unsure" : ""),
      title: line.gt_unsure ? "Alignment unsure: most of this line found no counterpart in the ground truth" : null,
    },
    line.gt_unsure ? el("span", { className: "diff-unsure-note" }, "⚠ unsure ") : null,
    diffOps(normalizedDiff ? line.diff.normalized : line.diff.raw))));
  }

  function diffPanel(result) {
    const list = el("div", {}, diffList(result));
    const toggle = el("input", {
      type: "checkbox", id: "diff-normalized", checked: normalizedDiff,
      onchange: (event) => {
        normalizedDiff = event.target.checked;
        h.replaceChildren(list, diffList(result));
      },
    });
    return [
      pageCerLine(result.gt_cer),
      el("p", { className: "small" },
        el("label", {}, toggle, " Normalized, as the metric compares (lower-case, ASCII letters and digits only)")),
      el("p", { className: "small subtle diff-legend" }, "OCR against ground truth: ",
        el("ins", { className: "diff-ins" }, "underlined"), " only in the OCR, ",
        el("del", { className: "diff-del" }, "struck through"), " only in the ground truth, ",
        el("span", { className: "diff-sub" }, el("del", {}, "ground truth"), el("ins", {}, "OCR")),
        " substituted."),
      list,
    ];
  }

  function textTabs(result) {
    const tabs = result.stages
      .filter((s) => s.stage !== "extract")
      .map((s) => ({
        key: s.stage,
        title: STAGE_TITLES[s.stage] || s.stage,
        text: s.text,
        empty: s.status === "done" ? "(no text on this page)" : "No text yet — the stage is " + s.status + ".",
        error: s.error,
        scores: result.metrics[s.stage],
        // Document ground truth: the page's share of it scores the stage the diff is of.
        cer: !result.metrics[s.stage] && result.gt_cer && result.gt_cer.stage === s.stage
          ? result.gt_cer : null,
      }));
    if (result.gt_cer) {
      tabs.push({ key: "diff", title: "Diff against ground truth", panel: diffPanel(result) });
    }
    if (result.ground_truth !== null) {
      tabs.push({ key: "ground_truth", title: "Ground truth", text: result.ground_truth, empty: "(empty)" });
    } else if (result.ground_truth_aligned !== null && result.ground_truth_aligned !== undefined) {
      tabs.push({
        key: "ground_truth", title: "Ground truth (from the document)",
        text: result.ground_truth_aligned, empty: "(nothing of the document's ground truth aligned to this page)",
      });
    }
    if (!tabs.length) return [el("p", { className: "subtle" }, "No text stage has run on this page yet.")];
    if (!tabs.some((t) => t.key === chosenTab)) {
      const withText = tabs.filter((t) => t.key !== "ground_truth" && t.key !== "diff" && t.text);
      chosenTab = (withText.length ? withText[withText.length - 1] : tabs[0]).key;
    }
    const tablist = el("div", { className: "tabs", role: "tablist", "aria-label": "Texts of this page" });
    const panels = [];
    for (const tab of tabs) {
      const selected = tab.key === chosenTab;
      const button = el("button", {
        type: "button", role: "tab", id: "tab-" + tab.key, "aria-controls": "panel-" + tab.key,
        "aria-selected": selected ? "true" : "false", tabindex: selected ? "0" : "-1",
      }, tab.title);
      tablist.appendChild(button);
      panels.push(el("div", {
        role: "tabpanel", id: "panel-" + tab.key, "aria-labelledby": "tab-" + tab.key, hidden: !selected,
      },
      scoresLine(tab.scores),
      tab.cer ? pageCerLine(tab.cer) : null,
      tab.error ? el("p", { className: "error-text small" }, tab.error) : null,
      tab.panel ? tab.panel
        : tab.text ? el("pre", { className: "page-text", tabindex: "0" }, tab.text)
          : el("p", { className: "subtle" }, tab.empty)));
    }
    tablist.addEventListener("click", (event) => {
      const button = event.target.closest("button[role=tab]");
      if (button) selectTab(tablist, panels, button);
    });
    tablist.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      const buttons = Array.from(tablist.children);
      const at = buttons.indexOf(document.activeElement);
      if (at < 0) return;
      const next = buttons[(at + (event.key === "ArrowRight" ? 1 : buttons.length - 1)) % buttons.length];
      selectTab(tablist, panels, next);
      next.focus();
    });
    const hasTruth = result.ground_truth !== null || Boolean(result.gt_cer);
    const note = hasTruth ? null : el("p", { className: "small subtle" },
      "No ground truth for this page, so no CER here (a document-level transcription is scored on the run page).");
    return [tablist, ...panels, note];
  }

  function selectTab(tablist, panels, button) {
    for (const other of tablist.children) {
      const on = other === button;
      other.setAttribute("aria-selected", on ? "true" : "false");
      other.tabIndex = on ? 0 : -1;
    }
    for (const panel of panels) panel.hidden = panel.id !== button.getAttribute("aria-controls");
    chosenTab = button.id.slice("tab-".length);
  }

  /* ---------- stages and records ---------- */

  function stagesTable(result) {
    if (!result.stages.length) return el("p", { className: "subtle" }, "No stage has been scheduled for this page yet.");
    return el("table", {},
      el("thead", {}, el("tr", {},
        el("th", {}, "Stage"), el("th", {}, "Engine"), el("th", {}, "Status"),
        el("th", { className: "num" }, "Attempts"), el("th", { className: "num" }, "Time"),
        el("th", { className: "num" }, "Tokens in / out"))),
      el("tbody", {}, result.stages.map((s) => el("tr", {},
        el("td", {}, STAGE_TITLES[s.stage] || s.stage),
        el("td", {}, s.engine, s.model ? el("div", { className: "small subtle" }, s.model) : null),
        el("td", {}, h.badge(s.status), s.error ? el("div", { className: "small error-text" }, s.error) : null),
        el("td", { className: "num" }, String(s.attempts)),
        el("td", { className: "num" }, typeof s.latency_s === "number" ? s.latency_s.toFixed(1) + " s" : "—"),
        el("td", { className: "num" }, s.tokens_in === null && s.tokens_out === null
          ? "—" : (s.tokens_in ?? "—") + " / " + (s.tokens_out ?? "—"))))));
  }

  function recordsTable(result) {
    const extract = result.stages.find((s) => s.stage === "extract");
    if (!result.records.length) {
      const why = !extract ? "This run does not extract records."
        : extract.status === "done" ? "No records were found on this page."
        : "No records yet — extraction is " + extract.status + ".";
      return el("p", { className: "subtle" }, why);
    }
    const names = fields.length ? fields : Object.keys(result.records[0].fields);
    return el("table", { className: "records-table" },
      el("thead", {}, el("tr", {},
        el("th", { className: "num" }, "#"), el("th", { className: "num" }, "Line"),
        names.map((name) => el("th", {}, name)), el("th", {}, "Source line"))),
      el("tbody", {}, result.records.map((r) => el("tr", {},
        el("td", { className: "num" }, String(r.position + 1)),
        el("td", { className: "num" }, r.line_number === null ? "—" : String(r.line_number)),
        names.map((name) => el("td", {}, r.fields[name] === null || r.fields[name] === undefined ? "" : String(r.fields[name]))),
        el("td", { className: "source" }, r.source_line)))));
  }

  /* ---------- a page ---------- */

  function showCrop(result) {
    // The crop box OCR found, in page-image pixels: drawn over the scan in percent of its size.
    const box = document.getElementById("crop-box");
    const caption = document.getElementById("crop-caption");
    const page = pages[current];
    const layout = (result.stages.find((s) => s.page_layout && s.page_layout.crop) || {}).page_layout;
    const width = Number(page.width);
    const height = Number(page.height);
    box.hidden = caption.hidden = !(layout && width && height);
    if (box.hidden) return;
    const [x0, y0, x1, y1] = layout.crop;
    box.style.left = (100 * x0) / width + "%";
    box.style.top = (100 * y0) / height + "%";
    box.style.width = (100 * (x1 - x0)) / width + "%";
    box.style.height = (100 * (y1 - y0)) / height + "%";
    caption.textContent =
      "Dashed: the text block OCR read (outside it: book edges, the facing page)" +
      (layout.angle ? " · straightened by " + layout.angle + "°" : "");
  }

  function render(result) {
    showCrop(result);
    h.replaceChildren(document.getElementById("page-text"), textTabs(result));
    h.replaceChildren(document.getElementById("page-stages"), stagesTable(result));
    h.replaceChildren(document.getElementById("page-records"), recordsTable(result));
  }

  async function load(mine) {
    clearTimeout(timer);
    const page = pages[current];
    let result;
    try {
      result = await api("/runs/" + runId + "/pages/" + page.id);
    } catch (failure) {
      if (mine !== generation) return;
      h.showBanner("Could not load page " + page.number + ": " + failure.message);
      timer = setTimeout(() => load(mine), 5000);
      return;
    }
    if (mine !== generation) return;
    h.hideBanner();
    render(result);
    // Keep following a page whose stages are still at work.
    if (result.stages.some((s) => ACTIVE.includes(s.status)) || !result.stages.length) {
      if (root.dataset.runStatus !== "done" && root.dataset.runStatus !== "failed") {
        timer = setTimeout(() => load(mine), 3000);
      }
    }
  }

  function show(index) {
    current = Math.max(0, Math.min(pages.length - 1, index));
    const page = pages[current];
    for (const p of pages) {
      if (p === page) p.link.setAttribute("aria-current", "page");
      else p.link.removeAttribute("aria-current");
    }
    document.getElementById("prev-page").disabled = current === 0;
    document.getElementById("next-page").disabled = current === pages.length - 1;
    const image = document.getElementById("page-image");
    image.src = h.API + "/pages/" + page.id + "/preview";
    image.alt = "Scan of page " + page.number + " of " + document.querySelector("h1.filename").textContent;
    image.width = Number(page.width);
    image.height = Number(page.height);
    document.getElementById("page-image-link").href = h.API + "/pages/" + page.id + "/image";
    const hasImage = Number(page.width) > 0;
    image.hidden = !hasImage;
    document.getElementById("crop-box").hidden = true;
    document.getElementById("crop-caption").hidden = true;
    document.getElementById("page-caption").textContent = hasImage
      ? "Page " + page.number + " of " + pages.length + " · " + page.width + " × " + page.height +
        " px · click to open full size"
      : "Page " + page.number + " of " + pages.length + " · imported text, no image";
    document.getElementById("page-number").textContent = String(page.number);
    for (const id of ["page-text", "page-stages", "page-records"]) {
      h.replaceChildren(document.getElementById(id), el("p", { className: "subtle" }, "Loading…"));
    }
    generation += 1;
    load(generation);
  }

  function indexFromHash() {
    const match = /^#page-(\d+)$/.exec(window.location.hash);
    const at = match ? pages.findIndex((p) => p.number === Number(match[1])) : -1;
    return at < 0 ? 0 : at;
  }

  function go(index) {
    const page = pages[Math.max(0, Math.min(pages.length - 1, index))];
    window.location.hash = "page-" + page.number; // hashchange shows it
  }

  document.getElementById("prev-page").addEventListener("click", () => go(current - 1));
  document.getElementById("next-page").addEventListener("click", () => go(current + 1));
  window.addEventListener("hashchange", () => show(indexFromHash()));
  show(indexFromHash());
})();
