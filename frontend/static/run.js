/* Run page: follow progress until the run finishes; show its scores against ground truth, the
   ground-truth versions they were computed with, earlier evaluations, and re-scoring. */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api } = h;
  const root = document.getElementById("run");
  const runId = root.dataset.runId;
  const projectId = root.dataset.projectId;
  const STATUSES = ["pending", "queued", "running", "done", "failed", "skipped"];
  const STAGE_TITLES = { ocr: "OCR", correct: "Post-correction", extract: "Extraction" };
  let lastDone = null;
  let lastStatus = root.dataset.status;
  let metricsLoadedAt = 0;
  /** The evaluation shown: null for the latest (what the page follows), else its number. */
  let shownEvaluation = null;

  /** The run's documents as the server listed them: [{id, filename}]. */
  const documents = Array.from(document.querySelectorAll("#run-documents tr[data-document-id]")).map(
    (row) => ({ id: Number(row.dataset.documentId), filename: row.querySelector(".filename").textContent.trim(), row }),
  );

  /* ---------- progress ---------- */

  function showRun(run) {
    root.dataset.status = run.status;
    h.replaceChildren(document.getElementById("run-status"), h.badge(run.status, true));
    h.replaceChildren(
      document.getElementById("run-progress"),
      h.progressBar(run.progress.fraction, h.progressLabel(run.progress), run.status, true),
    );
    for (const row of document.querySelectorAll("#stage-counts tr[data-stage]")) {
      const counts = run.stages[row.dataset.stage] || {};
      for (const status of STATUSES) {
        row.querySelector('[data-count="' + status + '"]').textContent = String(counts[status] || 0);
      }
    }
    const totals = run.totals;
    const parts = [(totals.records || 0) + " records"];
    if (totals.latency_s !== null && totals.latency_s !== undefined) {
      parts.push(totals.latency_s.toFixed(1) + " s of engine time");
    }
    if (totals.tokens_in !== null && totals.tokens_in !== undefined) {
      parts.push(totals.tokens_in + " tokens in, " + (totals.tokens_out || 0) + " out");
    }
    document.getElementById("run-totals").textContent = parts.join(" · ");
    showHeadline(run.summary);
    if (run.finished_at) {
      h.replaceChildren(document.getElementById("run-finished"), " · finished ",
        el("time", { datetime: run.finished_at, title: run.finished_at }, h.formatDate(run.finished_at)));
    }
  }

  function showHeadline(summary) {
    const parts = [];
    if (summary && summary.text) {
      parts.push("CER ", el("b", {}, h.pct(summary.text.cer)), " · normalized CER ",
        el("b", {}, h.pct(summary.text.cer_normalized)), " (" + (STAGE_TITLES[summary.stage] || summary.stage) + ")");
    }
    if (summary && summary.records) {
      if (parts.length) parts.push(" · ");
      parts.push("records F1 ", el("b", {}, h.pct(summary.records.records.f1)));
    }
    h.replaceChildren(document.getElementById("run-headline"), parts);
  }

  async function refreshDocuments() {
    const all = await api("/projects/" + projectId + "/documents");
    const byId = new Map(all.map((doc) => [doc.id, doc]));
    for (const { id, row } of documents) {
      const doc = byId.get(id);
      if (!doc) continue;
      h.replaceChildren(row.querySelector(".doc-status"), h.badge(doc.status),
        doc.error ? el("div", { className: "small error-text" }, doc.error) : null);
      row.querySelector(".doc-pages").textContent = String(doc.page_count ?? (doc.pages_ingested || "—"));
    }
  }

  let lastProblems = Number(root.dataset.problems);

  async function refreshRun() {
    const run = await api("/runs/" + runId);
    showRun(run);
    const problems = run.progress.failed + run.progress.skipped;
    if (problems !== lastProblems) {
      lastProblems = problems;
      await loadFailedPages();
    }
    const finished = h.FINISHED_RUN.includes(run.status);
    if (run.progress.documents_waiting || finished) await refreshDocuments();
    // Scores change as pages finish; reload them then, but not more than every 5 s.
    const changed = run.progress.done !== lastDone || run.status !== lastStatus;
    if ((changed && Date.now() - metricsLoadedAt > 5000) || (finished && run.status !== lastStatus)) {
      await loadMetrics();
    }
    lastDone = run.progress.done;
    lastStatus = run.status;
    return !finished;
  }

  /* ---------- scores ---------- */

  function scoreCells(scores) {
    const keys = ["cer", "cer_normalized", "wer", "wer_normalized"];
    return [
      el("td", { className: "num" }, scores && typeof scores.characters === "number" ? String(scores.characters) : "—"),
      ...keys.map((key) => el("td", { className: "num" }, h.pct(scores ? scores[key] : null))),
    ];
  }

  function textTable(stage, stageMetrics, isFinal) {
    const byDocument = new Map(stageMetrics.documents.map((d) => [d.document_id, d]));
    const rows = documents.map(({ id, filename }) => {
      const scores = byDocument.get(id);
      return el("tr", {},
        el("td", { className: "filename" }, el("a", { href: "/runs/" + runId + "/documents/" + id }, filename),
          scores ? null : el("span", { className: "small subtle" }, " · no transcription of the whole document")),
        ...scoreCells(scores));
    });
    rows.push(el("tr", { className: "total" }, el("td", {}, "All documents with ground truth"),
      ...scoreCells(stageMetrics.run)));
    return el("div", { className: "table-wrap" },
      el("h3", {}, "Text — " + (STAGE_TITLES[stage] || stage) + (isFinal ? " (final text)" : "")),
      el("table", { className: "scores-table", dataset: { stage } }, scoreHead("Document"), el("tbody", {}, rows)),
      stageMetrics.pages.length ? pageTable(stageMetrics.pages) : null);
  }

  function scoreHead(first) {
    return el("thead", {}, el("tr", {},
      el("th", {}, first), el("th", { className: "num" }, "Characters"),
      el("th", { className: "num" }, "CER"), el("th", { className: "num" }, "CER normalized"),
      el("th", { className: "num" }, "WER"), el("th", { className: "num" }, "WER normalized")));
  }

  /** Pages that have a transcription of their own. */
  function pageTable(pages) {
    const names = new Map(documents.map((d) => [d.id, d.filename]));
    return el("details", { className: "page-scores" },
      el("summary", {}, pages.length === 1 ? "1 page with its own ground truth" : pages.length + " pages with their own ground truth"),
      el("table", {}, scoreHead("Page"), el("tbody", {}, pages.map((p) => el("tr", {},
        el("td", {}, el("a", { href: "/runs/" + runId + "/documents/" + p.document_id + "#page=" + p.number },
          (names.get(p.document_id) || "document " + p.document_id) + ", page " + p.number)),
        ...scoreCells(p))))));
  }

  function recordCells(scores) {
    if (!scores) return [6, 7, 8, 9, 10, 11, 12].map(() => el("td", { className: "num" }, "—"));
    const r = scores.records;
    const all = (scores.fields && scores.fields.all) || {};
    return [
      el("td", { className: "num" }, String(r.reference)),
      el("td", { className: "num" }, String(r.hypothesis)),
      el("td", { className: "num" }, String(r.matched)),
      el("td", { className: "num" }, h.pct(r.precision)),
      el("td", { className: "num" }, h.pct(r.recall)),
      el("td", { className: "num" }, h.pct(r.f1)),
      el("td", { className: "num" }, h.pct(all.exact) + " / " + h.pct(all.fuzzy)),
    ];
  }

  function recordsTables(records) {
    const byDocument = new Map(records.documents.map((d) => [d.document_id, d]));
    const rows = documents.map(({ id, filename }) =>
      el("tr", {}, el("td", { className: "filename" }, filename), ...recordCells(byDocument.get(id))));
    rows.push(el("tr", { className: "total" }, el("td", {}, "All documents with reference records"),
      ...recordCells(records.run)));
    const fields = Object.entries(records.run.fields || {}).filter(([name]) => name !== "all");
    return el("div", {},
      el("h3", {}, "Records"),
      el("div", { className: "table-wrap" }, el("table", { id: "records-scores" },
        el("thead", {}, el("tr", {},
          el("th", {}, "Document"), el("th", { className: "num" }, "Reference"),
          el("th", { className: "num" }, "Extracted"), el("th", { className: "num" }, "Matched"),
          el("th", { className: "num" }, "Precision"), el("th", { className: "num" }, "Recall"),
          el("th", { className: "num" }, "F1"), el("th", { className: "num" }, "Fields exact / fuzzy"))),
        el("tbody", {}, rows))),
      fields.length ? el("div", { className: "table-wrap" },
        el("h3", {}, "Field agreement over matched records"),
        el("table", {},
          el("thead", {}, el("tr", {}, el("th", {}, "Field"),
            el("th", { className: "num" }, "Exact"), el("th", { className: "num" }, "Fuzzy"))),
          el("tbody", {}, fields.map(([name, rates]) =>
            el("tr", {}, el("td", {}, name), el("td", { className: "num" }, h.pct(rates.exact)),
              el("td", { className: "num" }, h.pct(rates.fuzzy))))))) : null);
  }

  /** The engine's output beside the reviewed text and records (latest versions): what
   *  review has changed, in the same measures. */
  function reviewComparison(metrics) {
    const engine = metrics.engine, latest = metrics.latest;
    if (!engine || !latest) return null;
    const review = latest.review || {};
    const stage = metrics.final_stage;
    const rows = [];
    const before = engine.text && engine.text[stage] ? engine.text[stage].run : null;
    const after = latest.text && latest.text[stage] ? latest.text[stage].run : null;
    const measures = [["cer", "CER"], ["cer_normalized", "CER normalized"], ["wer", "WER"], ["wer_normalized", "WER normalized"]];
    if (before && after) {
      for (const [key, title] of measures) rows.push(comparisonRow(title, before[key], after[key], true));
    }
    const recordsBefore = engine.records ? engine.records.run : null;
    const recordsAfter = latest.records ? latest.records.run : null;
    if (recordsBefore && recordsAfter) {
      rows.push(comparisonRow("Records F1", recordsBefore.records.f1, recordsAfter.records.f1, false));
      const all = (r) => (r.fields && r.fields.all) || {};
      rows.push(comparisonRow("Fields exact", all(recordsBefore).exact, all(recordsAfter).exact, false));
      rows.push(comparisonRow("Fields fuzzy", all(recordsBefore).fuzzy, all(recordsAfter).fuzzy, false));
    }
    const counts = (review.lines_edited || 0) + " line(s) corrected · " + (review.records_changed || 0) +
      " record(s) changed or added · " + (review.pages_verified || 0) + " page(s) verified";
    return el("section", { id: "review-comparison" },
      el("h3", {}, "Engine output and reviewed text"),
      el("p", { className: "small subtle" }, counts + ". The reviewed column scores the latest version of " +
        "every line and record against the current ground truth; exports give the reviewed version " +
        "unless you ask for the engine's."),
      rows.length ? el("div", { className: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "Measure"), el("th", { className: "num" }, "Engine"),
          el("th", { className: "num" }, "Reviewed"), el("th", { className: "num" }, "Change"))),
        el("tbody", {}, rows))) : el("p", { className: "subtle small" }, "No ground truth to compare them on."));
  }

  /** One measure before and after review; for error rates lower is better. */
  function comparisonRow(title, before, after, lowerIsBetter) {
    const known = typeof before === "number" && typeof after === "number";
    const delta = known ? after - before : null;
    const better = known && delta !== 0 && (lowerIsBetter ? delta < 0 : delta > 0);
    const change = !known ? "—" : delta === 0 ? "no change" :
      (delta > 0 ? "+" : "−") + (Math.abs(delta) * 100).toFixed(2) + " pp";
    return el("tr", {}, el("td", {}, title), el("td", { className: "num" }, h.pct(before)),
      el("td", { className: "num" }, h.pct(after)),
      el("td", { className: "num " + (delta === 0 || !known ? "" : better ? "better" : "worse") }, change));
  }

  function showDocumentCer(finalMetrics) {
    const byDocument = new Map((finalMetrics ? finalMetrics.documents : []).map((d) => [d.document_id, d]));
    for (const { id, row } of documents) {
      const scores = byDocument.get(id);
      row.querySelector(".doc-cer").textContent = h.pct(scores ? scores.cer_normalized : null);
    }
  }

  /* ---------- evaluations and ground-truth versions ---------- */

  const REASONS = { finished: "when the run finished", rescore: "re-scored" };
  const KIND_TITLES = { text: "transcription", records: "records" };

  /** "type-1.txt v2 (transcription of page 3 of scan.pdf)" for a piece of ground truth. */
  function truthLabel(truth) {
    const names = new Map(documents.map((d) => [d.id, d.filename]));
    const where = (truth.page ? "page " + truth.page + " of " : "") +
      (names.get(truth.document_id) || "document " + truth.document_id);
    return (truth.filename || KIND_TITLES[truth.kind] || truth.kind) + " v" + truth.version +
      " (" + (KIND_TITLES[truth.kind] || truth.kind) + " of " + where + ", by " + truth.author + ")";
  }

  function truthList(truths) {
    return el("ul", { className: "ground-truth-versions" }, truths.map((t) => el("li", {}, truthLabel(t))));
  }

  async function rescore(button) {
    button.disabled = true;
    button.textContent = "Re-scoring…";
    try {
      // api() sends the session's CSRF token (app.js).
      await api("/runs/" + runId + "/evaluate", { method: "POST" });
    } catch (failure) {
      h.showBanner("Could not re-score the run: " + failure.message);
      button.disabled = false;
      button.textContent = "Re-score against current ground truth";
      return;
    }
    shownEvaluation = null;
    await loadMetrics();
    showRun(await api("/runs/" + runId));
  }

  /** Which evaluation is shown, against which ground truth; newer ground truth and re-scoring. */
  function showEvaluation(metrics) {
    const target = document.getElementById("evaluation");
    const shown = metrics.evaluation;
    if (!shown) {
      h.replaceChildren(target);
      return;
    }
    const all = metrics.evaluations;
    const parts = [el("p", { className: "evaluation-meta" },
      "Evaluation " + shown.number + " of " + all.length + " · ",
      el("time", { datetime: shown.created_at, title: shown.created_at }, h.formatDate(shown.created_at)),
      " · " + (REASONS[shown.reason] || shown.reason) + " by " + shown.author)];
    if (all.length > 1) {
      const picker = el("select", { id: "evaluation-choice", "aria-label": "Evaluation shown",
        onchange: (event) => {
          const number = Number(event.target.value);
          shownEvaluation = number === all[all.length - 1].number ? null : number;
          loadMetrics();
        } },
      all.map((e) => el("option", { value: String(e.number), selected: e.number === shown.number },
        "Evaluation " + e.number + " — " + h.formatDate(e.created_at) + " (" + e.author + ")")));
      parts.push(el("p", {}, el("label", { htmlFor: "evaluation-choice" }, "Show: "), picker));
    }
    parts.push(metrics.ground_truth.length
      ? el("div", {}, el("p", { className: "subtle" }, "Scored against this ground truth:"), truthList(metrics.ground_truth))
      : el("p", { className: "subtle" }, "Scored with no ground truth attached."));
    if (metrics.stale) {
      parts.push(el("div", { id: "newer-ground-truth" },
        el("p", { className: "notice-text" }, "Newer ground truth exists: these scores are against earlier versions."),
        truthList(metrics.newer_ground_truth),
        shownEvaluation === null
          ? el("button", { type: "button", id: "rescore", onclick: (event) => rescore(event.currentTarget) },
            "Re-score against current ground truth")
          : null));
    }
    h.replaceChildren(target, parts);
  }

  async function loadMetrics() {
    metricsLoadedAt = Date.now();
    const target = document.getElementById("metrics");
    let metrics;
    try {
      const query = shownEvaluation === null ? "" : "?evaluation=" + shownEvaluation;
      metrics = await api("/runs/" + runId + "/metrics" + query);
    } catch (failure) {
      h.replaceChildren(target, el("p", { className: "error-text" }, "Could not load the scores: " + failure.message));
      return;
    }
    const stages = Object.keys(metrics.text || {});
    const anyText = stages.some((stage) => metrics.text[stage].documents.length || metrics.text[stage].pages.length);
    const parts = [];
    if (!anyText && !metrics.records) {
      parts.push(el("p", { className: "subtle" },
        "No ground truth to score against yet. Attach a transcription (.txt) or records (.csv) to a document on the ",
        el("a", { href: "/projects/" + projectId }, "project page"), "."));
    }
    if ((anyText || metrics.records) && !h.FINISHED_RUN.includes(root.dataset.status)) {
      parts.push(el("p", { className: "notice-text small" },
        "Provisional: the run is still working, and pages without a result yet count as empty text."));
    }
    if (anyText) {
      for (const stage of stages) parts.push(textTable(stage, metrics.text[stage], stage === metrics.final_stage));
    }
    if (metrics.records) parts.push(recordsTables(metrics.records));
    if (anyText || metrics.records) parts.push(reviewComparison(metrics));
    h.replaceChildren(target, parts);
    showEvaluation(metrics);
    showDocumentCer(metrics.text ? metrics.text[metrics.final_stage] : null);
  }

  /* ---------- pages that failed ---------- */

  const STATUS_WORDS = { failed: "failed", skipped: "not run" };

  /** Which pages did not get through which stage, and why; and that a page without text
   *  counts as 100 % CER in the scores. */
  async function loadFailedPages() {
    const card = document.getElementById("failed-pages");
    let failed;
    try {
      failed = await api("/runs/" + runId + "/failed-pages");
    } catch (failure) {
      card.hidden = false;
      h.replaceChildren(document.getElementById("failed-summary"),
        el("span", { className: "error-text" }, "Could not load the failed pages: " + failure.message));
      return;
    }
    card.hidden = !failed.length;
    if (!failed.length) return;
    const pages = new Set(failed.map((f) => f.page_id));
    const textless = new Set(failed.filter((f) => f.no_text).map((f) => f.page_id));
    const final = { ocr: "OCR", correct: "corrected" }[root.dataset.finalStage] || root.dataset.finalStage;
    h.replaceChildren(document.getElementById("failed-summary"),
      pages.size === 1 ? "1 page" : pages.size + " pages", " did not get through every stage. ",
      textless.size
        ? el("strong", {}, (textless.size === 1 ? "1 page has" : textless.size + " pages have") +
          " no " + final + " text: in the scores each counts as empty text, so every character of its ground truth counts as an error (100 % CER on that page), which raises the document's and the run's CER. ")
        : null,
      "A stage marked “not run” was skipped because the stage before it failed.");
    const counted = new Set();  // "counts as 100 %" once per page, on its first row
    const rows = failed.map((f) => el("tr", { dataset: { pageId: String(f.page_id) } },
      el("td", { className: "filename" },
        el("a", { href: "/runs/" + runId + "/documents/" + f.document_id + "#page=" + f.page_number },
          f.filename + ", page " + f.page_number)),
      el("td", {}, (STAGE_TITLES[f.stage] || f.stage) + " " + (STATUS_WORDS[f.status] || f.status)),
      el("td", { className: "small" }, f.error || "—"),
      el("td", { className: "small" }, f.no_text && !counted.has(f.page_id) && counted.add(f.page_id)
        ? "no text: counts as 100 % CER" : "")));
    h.replaceChildren(document.getElementById("failed-table"), el("table", { id: "failed-table-rows" },
      el("thead", {}, el("tr", {}, el("th", {}, "Page"), el("th", {}, "Stage"),
        el("th", {}, "Why"), el("th", {}, "In the scores"))),
      el("tbody", {}, rows)));
  }

  /* ---------- renaming and deleting ---------- */

  document.getElementById("rename-run").addEventListener("click", async () => {
    const name = await h.askName({ title: "Rename " + root.dataset.label, label: "Name", value: root.dataset.name || "" });
    if (name === null) return;
    try {
      const run = await api("/runs/" + runId, { method: "PATCH", json: { name } });
      root.dataset.name = run.name;
      document.getElementById("run-name").textContent = run.name ? " — " + run.name : "";
    } catch (failure) {
      h.showBanner("Could not rename the run: " + failure.message);
    }
  });

  document.getElementById("delete-run").addEventListener("click", async () => {
    const running = !h.FINISHED_RUN.includes(root.dataset.status);
    const sure = await h.confirmAction({
      title: "Delete " + root.dataset.label + "?",
      message: "The run goes with everything it produced: text, records, corrections and scores.",
      details: running ? ["It is still working: it is stopped first."] : [],
      confirmLabel: "Delete the run",
    });
    if (!sure) return;
    try {
      await api("/runs/" + runId, { method: "DELETE" });
      window.location.assign("/projects/" + projectId);
    } catch (failure) {
      h.showBanner("Could not delete the run: " + failure.message);
    }
  });

  /* ---------- start ---------- */

  loadMetrics();
  loadFailedPages();
  if (!h.FINISHED_RUN.includes(root.dataset.status)) h.poll(refreshRun, 2000).start(0);
})();

/* Review queue: the run's pages by estimated error (GET /runs/{id}/review-queue), worst first,
   each linked to its page in the document view. Reloaded whenever the run's status changes. */
(function () {
  const h = window.histocr;
  const { el, api } = h;
  const root = document.getElementById("run");
  const target = document.getElementById("review-queue");
  if (!root || !target) return;
  const runId = root.dataset.runId;
  const SHOWN = 50;

  function filenames() {
    const names = new Map();
    for (const row of document.querySelectorAll("#run-documents tr[data-document-id]")) {
      names.set(Number(row.dataset.documentId), row.querySelector(".filename").textContent.trim());
    }
    return names;
  }

  async function loadQueue() {
    let queue;
    try {
      queue = await api("/runs/" + runId + "/review-queue");
    } catch (failure) {
      h.replaceChildren(target, el("p", { className: "error-text" }, "Could not load the review queue: " + failure.message));
      return;
    }
    const open = queue.filter((item) => !item.verified);
    if (!open.length) {
      h.replaceChildren(target, el("p", { className: "subtle" }, queue.length ? "Every page is verified." : "No pages yet."));
      return;
    }
    const names = filenames();
    const rows = open.slice(0, SHOWN).map((item, index) => {
      const name = names.get(item.document_id) || "document " + item.document_id;
      const href = "/runs/" + runId + "/documents/" + item.document_id + "#page=" + item.page_number;
      return el("tr", { dataset: { pageId: String(item.page_id) } },
        el("td", { className: "num" }, String(index + 1)),
        el("td", { className: "filename" }, el("a", { href }, name + ", page " + item.page_number)),
        el("td", { className: "num" }, h.estimatePct(item.estimated_cer)));
    });
    const parts = [el("table", { id: "review-table" },
      el("thead", {}, el("tr", {}, el("th", { className: "num" }, "#"), el("th", {}, "Page"),
        el("th", { className: "num", title: "estimated character error rate, without ground truth" }, "Estimated CER"))),
      el("tbody", {}, rows))];
    if (open.length > SHOWN) parts.push(el("p", { className: "small subtle" }, "The " + SHOWN + " worst of " + open.length + " pages."));
    h.replaceChildren(target, parts);
  }

  // showRun (above) sets data-status on every poll; reload only when the status changes.
  let shownFor = root.dataset.status;
  new MutationObserver(() => {
    if (root.dataset.status === shownFor) return;
    shownFor = root.dataset.status;
    loadQueue();
  }).observe(root, { attributes: true, attributeFilter: ["data-status"] });
  loadQueue();
})();
