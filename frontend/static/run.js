/* Run page: follow progress until the run finishes; show its scores against ground truth. */
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

  async function refreshRun() {
    const run = await api("/runs/" + runId);
    showRun(run);
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
        el("td", {}, el("a", { href: "/runs/" + runId + "/documents/" + p.document_id + "#page-" + p.number },
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

  function showDocumentCer(finalMetrics) {
    const byDocument = new Map((finalMetrics ? finalMetrics.documents : []).map((d) => [d.document_id, d]));
    for (const { id, row } of documents) {
      const scores = byDocument.get(id);
      row.querySelector(".doc-cer").textContent = h.pct(scores ? scores.cer_normalized : null);
    }
  }

  async function loadMetrics() {
    metricsLoadedAt = Date.now();
    const target = document.getElementById("metrics");
    let metrics;
    try {
      metrics = await api("/runs/" + runId + "/metrics");
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
    h.replaceChildren(target, parts);
    showDocumentCer(metrics.text ? metrics.text[metrics.final_stage] : null);
  }

  /* ---------- start ---------- */

  loadMetrics();
  if (!h.FINISHED_RUN.includes(root.dataset.status)) h.poll(refreshRun, 2000).start(0);
})();
