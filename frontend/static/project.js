/* Project page: upload scans, attach ground truth, follow documents and runs, start a run. */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api } = h;
  const root = document.getElementById("project");
  const projectId = root.dataset.projectId;
  const documentsBody = document.querySelector("#documents tbody");
  const runsBody = document.querySelector("#runs tbody");
  let keepRunsFreshUntil = 0;

  /* ---------- documents ---------- */

  function pagesText(doc) {
    if (doc.status === "ready") return String(doc.page_count ?? doc.pages_ingested);
    if (doc.page_count) return doc.pages_ingested + " / " + doc.page_count;
    return doc.pages_ingested ? String(doc.pages_ingested) : "—";
  }

  function flag(on, label) {
    return el("span", { className: "flag " + (on ? "yes" : "no") }, (on ? "✓ " : "– ") + label);
  }

  function fillStatusCells(row, doc) {
    row.dataset.status = doc.status;
    h.replaceChildren(
      row.querySelector(".doc-status"),
      h.badge(doc.status),
      doc.error ? el("div", { className: "small error-text" }, doc.error) : null,
    );
    row.querySelector(".doc-pages").textContent = pagesText(doc);
    h.replaceChildren(
      row.querySelector(".doc-gt"),
      flag(doc.has_ground_truth_text, "text"),
      el("br"),
      flag(doc.has_ground_truth_records, "records"),
    );
  }

  function groundTruthForm(docId) {
    const form = el(
      "form",
      { className: "gt-form", dataset: { documentId: String(docId) } },
      el("label", { for: "gt-file-" + docId }, "Transcription (.txt) or records (.csv)"),
      el("input", {
        type: "file", id: "gt-file-" + docId, name: "file",
        accept: ".txt,.csv,text/plain,text/csv", required: true,
      }),
      el("label", { for: "gt-page-" + docId }, "Page number ",
        el("span", { className: "subtle" }, "(optional, for one page's text)")),
      el("input", { type: "number", id: "gt-page-" + docId, name: "page", min: "1", step: "1" }),
      el("div", {}, el("button", { type: "submit", className: "small" }, "Attach")),
      el("p", { className: "gt-message", role: "status" }),
    );
    return el("details", { className: "gt" }, el("summary", {}, "Attach ground truth"), form);
  }

  function documentRow(doc) {
    const row = el(
      "tr",
      { dataset: { documentId: String(doc.id) } },
      el("td", { className: "num" }, String(doc.id)),
      el("td", { className: "filename" },
        el("a", { href: h.API + "/documents/" + doc.id + "/file", title: "Download the original file" }, doc.filename)),
      el("td", { className: "doc-status" }),
      el("td", { className: "num doc-pages" }),
      el("td", { className: "num" }, h.formatBytes(doc.size_bytes)),
      el("td", { className: "doc-gt" }),
      el("td", {}, groundTruthForm(doc.id)),
    );
    fillStatusCells(row, doc);
    return row;
  }

  function addRunChoice(doc) {
    const choices = document.getElementById("run-document-choices");
    if (choices.querySelector('input[value="' + doc.id + '"]')) return;
    choices.appendChild(
      el("label", { className: "check", for: "run-doc-" + doc.id },
        el("input", { type: "checkbox", id: "run-doc-" + doc.id, name: "document", value: String(doc.id), checked: true }),
        " " + doc.filename),
    );
  }

  /** Update a document's row in place (keeping any half-filled form), or add it. */
  function showDocument(doc) {
    const row = documentsBody.querySelector('tr[data-document-id="' + doc.id + '"]');
    if (row) {
      fillStatusCells(row, doc);
    } else {
      const empty = documentsBody.querySelector(".empty-row");
      if (empty) empty.remove();
      documentsBody.appendChild(documentRow(doc));
      addRunChoice(doc);
    }
  }

  function documentsBusy() {
    return Array.from(documentsBody.querySelectorAll("tr[data-status]")).some((row) =>
      h.BUSY_DOCUMENT.includes(row.dataset.status),
    );
  }

  async function refreshDocuments() {
    const documents = await api("/projects/" + projectId + "/documents");
    documents.forEach(showDocument);
    return documents.some((doc) => h.BUSY_DOCUMENT.includes(doc.status));
  }

  const documentsPoll = h.poll(refreshDocuments, 2000);

  /* ---------- runs ---------- */

  function pipelineText(config) {
    return (config.stages || []).map((s) => s.stage + ": " + s.engine).join(" → ");
  }

  function runRow(run) {
    const summary = run.summary || {};
    const records = summary.records && summary.records.records;
    return el(
      "tr",
      { dataset: { runId: String(run.id), status: run.status } },
      el("td", {}, el("a", { href: "/runs/" + run.id }, "#" + run.id + (run.name ? " " + run.name : ""))),
      el("td", {}, h.badge(run.status)),
      el("td", {}, h.progressBar(run.progress.fraction, h.progressLabel(run.progress), run.status)),
      el("td", { className: "small" }, pipelineText(run.config)),
      el("td", { className: "num" }, h.pct(summary.text ? summary.text.cer_normalized : null)),
      el("td", { className: "num" }, String(run.totals.records || 0),
        records ? el("div", { className: "small subtle" }, "F1 " + h.pct(records.f1)) : null),
      el("td", { className: "small" },
        el("time", { datetime: run.created_at, title: run.created_at }, h.formatDate(run.created_at))),
    );
  }

  function runActive(status) {
    return !h.FINISHED_RUN.includes(status);
  }

  async function refreshRuns() {
    const runs = await api("/projects/" + projectId + "/runs");
    if (runs.length) h.replaceChildren(runsBody, runs.map(runRow));
    return runs.some((run) => runActive(run.status)) || Date.now() < keepRunsFreshUntil;
  }

  const runsPoll = h.poll(refreshRuns, 2000);

  /** Follow the runs for a while even if none is active (a re-score after new ground truth). */
  function followRuns(ms) {
    keepRunsFreshUntil = Math.max(keepRunsFreshUntil, Date.now() + ms);
    runsPoll.start(0);
  }

  /* ---------- upload ---------- */

  const dropzone = document.getElementById("dropzone");
  const fileInput = document.getElementById("file-input");
  const uploadList = document.getElementById("upload-list");
  const startRun = document.getElementById("start-default-run");

  function uploadItem(file) {
    const status = el("div", { className: "small subtle" }, "waiting…");
    const bar = el("div");
    const item = el("li", {},
      el("div", { className: "filename" }, el("strong", {}, file.name), " ",
        el("span", { className: "subtle small" }, h.formatBytes(file.size))),
      el("div", {}, bar, status));
    uploadList.appendChild(item);
    uploadList.hidden = false;
    return {
      progress(fraction) {
        h.replaceChildren(bar, h.progressBar(fraction,
          fraction < 1 ? "uploading " + Math.round(fraction * 100) + " %" : "checking…"));
        status.textContent = "";
      },
      done(message) {
        h.replaceChildren(bar);
        status.className = "small ok-text";
        status.textContent = message;
      },
      fail(message) {
        h.replaceChildren(bar);
        status.className = "small error-text";
        status.textContent = "Not stored — " + message;
      },
    };
  }

  async function uploadOne(file, item) {
    const form = new FormData();
    form.append("files", file, file.name);
    try {
      const result = await h.upload("/projects/" + projectId + "/documents", form, item.progress);
      const doc = result.documents[0];
      showDocument(doc);
      item.done(doc.duplicate ? "already in the project (document #" + doc.id + ")" : "stored as document #" + doc.id);
      return doc.id;
    } catch (failure) {
      item.fail(failure.message);
      return null;
    }
  }

  /** Upload files one by one (so one bad file does not stop the others), then start one run. */
  async function uploadFiles(files) {
    if (!files.length) return;
    const withRun = startRun.checked;
    const items = files.map(uploadItem);
    const stored = [];
    for (let i = 0; i < files.length; i += 1) {
      const id = await uploadOne(files[i], items[i]);
      if (id !== null) stored.push(id);
      documentsPoll.start(0);
    }
    if (withRun && stored.length) {
      try {
        const run = await api("/projects/" + projectId + "/runs", {
          method: "POST",
          json: { document_ids: stored },
        });
        uploadList.appendChild(el("li", {},
          el("div", {}, "Pipeline started:"),
          el("div", {}, el("a", { href: "/runs/" + run.id }, "run #" + run.id + " — follow its progress"))));
        followRuns(0);
      } catch (failure) {
        h.showBanner("The files were stored, but the run could not start: " + failure.message);
      }
    }
  }

  fileInput.addEventListener("change", () => {
    const files = Array.from(fileInput.files);
    fileInput.value = "";
    uploadFiles(files);
  });
  ["dragenter", "dragover"].forEach((name) =>
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((name) =>
    dropzone.addEventListener(name, () => dropzone.classList.remove("over")),
  );
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    uploadFiles(Array.from(event.dataTransfer.files));
  });
  // A file dropped next to the zone would make the browser leave the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  /* ---------- ground truth ---------- */

  documentsBody.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.gt-form");
    if (!form) return;
    event.preventDefault();
    const message = form.querySelector(".gt-message");
    const file = form.elements.file.files[0];
    message.className = "gt-message";
    if (!file) {
      message.className = "gt-message error-text";
      message.textContent = "Choose a .txt or .csv file first.";
      return;
    }
    const data = new FormData();
    data.append("file", file, file.name);
    const page = form.elements.page.value.trim();
    if (page) data.append("page", page);
    const button = form.querySelector("button");
    button.disabled = true;
    message.textContent = "uploading…";
    try {
      const truth = await h.upload("/documents/" + form.dataset.documentId + "/ground-truth", data);
      message.className = "gt-message ok-text";
      message.textContent = "Attached " + truth.filename + " (" + truth.kind + ", " +
        truth.characters + " characters" + (page ? ", page " + page : "") + ").";
      form.elements.file.value = "";
      await refreshDocuments();
      followRuns(10000);
    } catch (failure) {
      message.className = "gt-message error-text";
      message.textContent = failure.message;
    } finally {
      button.disabled = false;
    }
  });

  /* ---------- start a run ---------- */

  const runForm = document.getElementById("start-run-form");
  const runError = document.getElementById("start-run-error");
  const allDocuments = document.getElementById("run-all-documents");
  const choices = document.getElementById("run-document-choices");

  allDocuments.addEventListener("change", () => {
    choices.hidden = allDocuments.checked;
  });

  function fillEngines(select, engines, stage, allowNone, noneLabel) {
    const current = select.value;
    const options = engines
      .filter((engine) => engine.stages.includes(stage))
      .map((engine) => el("option", { value: engine.name, title: engine.description }, engine.name));
    if (allowNone) options.push(el("option", { value: "" }, noneLabel || "none (text only)"));
    h.replaceChildren(select, options);
    if (Array.from(select.options).some((o) => o.value === current)) select.value = current;
    const hint = document.getElementById(select.id + "-hint");
    const describe = () => {
      const chosen = engines.find((engine) => engine.name === select.value);
      hint.textContent = chosen ? chosen.description : "";
    };
    select.addEventListener("change", describe);
    describe();
  }

  let engines = [];

  // The endpoints a run may choose, by name (GET /engines lists names and default models,
  // never URLs or keys); the model field shows the chosen endpoint's default model.
  function fillEndpoints(select, engines) {
    const parameter = engines
      .flatMap((engine) => engine.parameters)
      .find((p) => p.name === "endpoint" && p.choices);
    if (!parameter) return;
    const defaults = parameter.choice_defaults || {};
    h.replaceChildren(
      select,
      parameter.choices.map((name) => el("option", { value: name }, name)),
    );
    select.value = parameter.default;
    const modelField = runForm.elements.model;
    const showModel = () => {
      const model = (defaults[select.value] || {}).model;
      modelField.placeholder = model ? model + " (the endpoint's default)" : "no default: name a model";
    };
    select.addEventListener("change", showModel);
    showModel();
  }

  async function loadEngines() {
    try {
      engines = await api("/engines");
      fillEngines(document.getElementById("ocr-engine"), engines, "ocr", false);
      fillEngines(document.getElementById("correct-engine"), engines, "correct", true, "none");
      document.getElementById("correct-engine").value = "";
      fillEngines(document.getElementById("extract-engine"), engines, "extract", true);
      fillEndpoints(document.getElementById("llm-endpoint"), engines);
    } catch (failure) {
      runError.textContent = "Could not load the engines: " + failure.message;
    }
  }

  runForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    runError.textContent = "";
    const body = { name: runForm.elements.name.value.trim() };
    const chosen = {
      model: runForm.elements.model.value.trim(),
      endpoint: runForm.elements.endpoint.value,
    };
    // The model and the endpoint go to every stage whose engine takes them (GET /engines lists
    // the parameters).
    const takes = (engine, parameter) =>
      engines.some((e) => e.name === engine && e.parameters.some((p) => p.name === parameter));
    const stage = (name, engine) => {
      const parameters = {};
      for (const [parameter, value] of Object.entries(chosen)) {
        if (value && takes(engine, parameter)) parameters[parameter] = value;
      }
      return Object.keys(parameters).length ? { stage: name, engine, parameters } : { stage: name, engine };
    };
    const stages = [stage("ocr", runForm.elements.ocr.value)];
    if (runForm.elements.correct.value) stages.push(stage("correct", runForm.elements.correct.value));
    if (runForm.elements.extract.value) {
      const extract = stage("extract", runForm.elements.extract.value);
      if (runForm.elements.extract_source.value) extract.source = runForm.elements.extract_source.value;
      if (runForm.elements.extract_inputs.value !== "text") extract.inputs = runForm.elements.extract_inputs.value;
      stages.push(extract);
    }
    body.stages = stages;
    if (!allDocuments.checked) {
      body.document_ids = Array.from(choices.querySelectorAll("input:checked")).map((i) => Number(i.value));
      if (!body.document_ids.length) {
        runError.textContent = "Choose at least one document.";
        return;
      }
    }
    const button = runForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const run = await api("/projects/" + projectId + "/runs", { method: "POST", json: body });
      window.location.assign("/runs/" + run.id);
    } catch (failure) {
      runError.textContent = failure.message;
      button.disabled = false;
    }
  });

  /* ---------- start ---------- */

  loadEngines();
  if (documentsBusy()) documentsPoll.start(0);
  if (Array.from(runsBody.querySelectorAll("tr[data-status]")).some((row) => runActive(row.dataset.status))) {
    runsPoll.start(0);
  }
})();
