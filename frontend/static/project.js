/* Project page: the record schema, uploads, ground truth, the documents and runs as they
   progress, and renaming and deleting them. The run form is in runform.js. */
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
    row.querySelector(".doc-link").textContent = doc.filename;
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

  function rowActions(kind) {
    return el("td", { className: "row-actions" },
      el("button", { type: "button", className: "secondary small", dataset: { action: "rename-" + kind } }, "Rename"),
      el("button", { type: "button", className: "danger small", dataset: { action: "delete-" + kind } }, "Delete"));
  }

  function documentRow(doc) {
    const row = el(
      "tr",
      { dataset: { documentId: String(doc.id) } },
      el("td", { className: "num" }, String(doc.id)),
      el("td", { className: "filename" },
        el("a", { className: "doc-link", href: "/documents/" + doc.id, title: "Open the document" }, doc.filename),
        el("div", { className: "small" },
          el("a", { href: h.API + "/documents/" + doc.id + "/file", download: "" }, "download the original"))),
      el("td", { className: "doc-status" }),
      el("td", { className: "num doc-pages" }),
      el("td", { className: "num" }, h.formatBytes(doc.size_bytes)),
      el("td", { className: "doc-gt" }),
      el("td", {}, groundTruthForm(doc.id)),
      rowActions("document"),
    );
    fillStatusCells(row, doc);
    return row;
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
      document.dispatchEvent(new CustomEvent("histocr:document-added", { detail: doc }));
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

  function runLabel(run) {
    return "Run " + (run.number ?? run.id) + (run.name ? " · " + run.name : "");
  }

  function runRow(run) {
    const summary = run.summary || {};
    const records = summary.records && summary.records.records;
    return el(
      "tr",
      { dataset: { runId: String(run.id), status: run.status, number: String(run.number ?? run.id), name: run.name } },
      el("td", {}, el("a", { href: "/runs/" + run.id }, runLabel(run))),
      el("td", {}, h.badge(run.status)),
      el("td", {}, h.progressBar(run.progress.fraction, h.progressLabel(run.progress), run.status)),
      el("td", { className: "small" }, pipelineText(run.config)),
      el("td", { className: "num" }, h.pct(summary.text ? summary.text.cer_normalized : null)),
      el("td", { className: "num" }, String(run.totals.records || 0),
        records ? el("div", { className: "small subtle" }, "F1 " + h.pct(records.f1)) : null),
      el("td", { className: "small" },
        el("time", { datetime: run.created_at, title: run.created_at }, h.formatDate(run.created_at))),
      rowActions("run"),
    );
  }

  function runActive(status) {
    return !h.FINISHED_RUN.includes(status);
  }

  async function refreshRuns() {
    const runs = await api("/projects/" + projectId + "/runs");
    if (runs.length) h.replaceChildren(runsBody, runs.map(runRow));
    else h.replaceChildren(runsBody, el("tr", { className: "empty-row" }, el("td", { colspan: "8", className: "empty" }, "No runs yet.")));
    return runs.some((run) => runActive(run.status)) || Date.now() < keepRunsFreshUntil;
  }

  const runsPoll = h.poll(refreshRuns, 2000);

  /** Follow the runs for a while even if none is active (a run just started by an upload). */
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

  /** Upload files one by one (so one bad file does not stop the others), then start one run.
   *  The list shows this batch only: the messages of an earlier batch are cleared. */
  async function uploadFiles(files) {
    if (!files.length) return;
    h.replaceChildren(uploadList);
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
          el("div", {}, el("a", { href: "/runs/" + run.id }, runLabel(run) + " — follow its progress"))));
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
    await sendGroundTruth(form, data, page, button, message, false);
  });

  /** Attach ground truth; text that plainly does not belong to the document (the server
   *  answers 409 with `mismatches`) is attached only after the user says so. */
  async function sendGroundTruth(form, data, page, button, message, confirm) {
    button.disabled = true;
    message.textContent = "uploading…";
    const path = "/documents/" + form.dataset.documentId + "/ground-truth" + (confirm ? "?confirm=true" : "");
    try {
      const truth = await h.upload(path, data);
      message.className = "gt-message ok-text";
      message.textContent = "Attached " + truth.filename + " (" + truth.kind + ", " +
        truth.characters + " characters" + (page ? ", page " + page : "") + ").";
      form.elements.file.value = "";
      await refreshDocuments();
    } catch (failure) {
      message.className = "gt-message error-text";
      if (failure.status === 409 && failure.body && failure.body.mismatches) {
        const anyway = el("button", { type: "button", className: "secondary small gt-confirm" }, "Attach anyway");
        anyway.addEventListener("click", () => sendGroundTruth(form, data, page, button, message, true));
        h.replaceChildren(message, failure.message + " ", anyway);
      } else {
        message.textContent = failure.message;
      }
    } finally {
      button.disabled = false;
    }
  }

  /* ---------- renaming and deleting ---------- */

  async function act(work, failureMessage) {
    try {
      await work();
      return true;
    } catch (failure) {
      h.showBanner(failureMessage + ": " + failure.message);
      return false;
    }
  }

  async function onDocumentAction(row, action) {
    const id = row.dataset.documentId;
    const name = row.querySelector(".doc-link").textContent.trim();
    if (action === "rename-document") {
      const filename = await h.askName({ title: "Rename the document", label: "Name", value: name, maxlength: 200 });
      if (!filename || filename === name) return;
      await act(async () => {
        const doc = await api("/documents/" + id, { method: "PATCH", json: { filename } });
        showDocument(doc);
        document.dispatchEvent(new CustomEvent("histocr:document-renamed", { detail: doc }));
      }, "Could not rename the document");
    } else if (action === "delete-document") {
      const sure = await h.confirmAction({
        title: "Delete “" + name + "”?",
        message: "The document goes with its pages, its ground truth and every run's text and records of it.",
        details: [
          "Runs over it keep their other documents; scores already given stay as they were.",
          "The stored file goes too, unless another document holds the same file.",
        ],
        confirmLabel: "Delete the document",
      });
      if (!sure) return;
      if (await act(() => api("/documents/" + id, { method: "DELETE" }), "Could not delete the document")) {
        row.remove();
        document.dispatchEvent(new CustomEvent("histocr:document-deleted", { detail: { id: Number(id) } }));
        refreshRuns();
      }
    }
  }

  async function onRunAction(row, action) {
    const id = row.dataset.runId;
    const label = "Run " + row.dataset.number;
    if (action === "rename-run") {
      const name = await h.askName({ title: "Rename " + label, label: "Name", value: row.dataset.name || "" });
      if (name === null) return;
      await act(() => api("/runs/" + id, { method: "PATCH", json: { name } }), "Could not rename the run");
      refreshRuns();
    } else if (action === "delete-run") {
      const running = runActive(row.dataset.status);
      const sure = await h.confirmAction({
        title: "Delete " + label + "?",
        message: "The run goes with everything it produced: text, records, corrections and scores.",
        details: running ? ["It is still working: it is stopped first."] : [],
        confirmLabel: "Delete the run",
      });
      if (!sure) return;
      if (await act(() => api("/runs/" + id, { method: "DELETE" }), "Could not delete the run")) {
        row.remove();
        refreshRuns();
      }
    }
  }

  root.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    if (row.dataset.documentId) onDocumentAction(row, button.dataset.action);
    else if (row.dataset.runId) onRunAction(row, button.dataset.action);
  });

  document.getElementById("rename-project").addEventListener("click", async () => {
    const title = document.getElementById("project-name");
    const name = await h.askName({ title: "Rename the project", label: "Name", value: title.textContent.trim() });
    if (!name || name === title.textContent.trim()) return;
    await act(async () => {
      const project = await api("/projects/" + projectId, { method: "PATCH", json: { name } });
      title.textContent = project.name;
      root.dataset.projectName = project.name;
      document.title = project.name + " · histocr";
    }, "Could not rename the project");
  });

  const deleteProject = document.getElementById("delete-project");
  if (deleteProject) {
    deleteProject.addEventListener("click", async () => {
      const sure = await h.confirmAction({
        title: "Delete the project “" + root.dataset.projectName + "”?",
        message: "Everything in it goes: its documents and their files, their ground truth, every run (running ones are stopped first) and its record fields.",
        details: ["Files that another project also holds stay there."],
        confirmLabel: "Delete the project",
      });
      if (!sure) return;
      if (await act(() => api("/projects/" + projectId, { method: "DELETE" }), "Could not delete the project")) {
        window.location.assign("/");
      }
    });
  }

  /* ---------- record schema ---------- */

  const schemaForm = document.getElementById("schema-form");
  const schemaError = document.getElementById("schema-error");
  const schemaMessage = document.getElementById("schema-message");
  const editButton = document.getElementById("edit-schema");
  let schemaFields = h.readJSON("schema-fields") || [];
  let editor = null;

  function showSchema(schema) {
    schemaFields = schema.fields;
    document.getElementById("schema-version").textContent = "version " + schema.version;
    h.replaceChildren(document.querySelector("#schema-table tbody"), schema.fields.map((field) =>
      el("tr", {},
        el("td", {}, el("strong", {}, field.name)),
        el("td", { className: "small" }, field.description || "—"),
        el("td", { className: "small" }, field.example || "—"),
        el("td", { className: "small" }, field.required ? "yes" : "no"))));
  }

  function closeEditor() {
    schemaForm.hidden = true;
    editButton.hidden = false;
    document.getElementById("schema-view").hidden = false;
  }

  editButton.addEventListener("click", () => {
    schemaMessage.textContent = "";
    schemaError.textContent = "";
    const defaults = h.readJSON("default-fields");
    if (!editor) editor = h.schemaEditor(document.getElementById("schema-editor"), schemaFields, { defaults });
    else editor.reset(schemaFields);
    schemaForm.hidden = false;
    editButton.hidden = true;
    document.getElementById("schema-view").hidden = true;
  });
  document.getElementById("cancel-schema").addEventListener("click", closeEditor);

  schemaForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    schemaError.textContent = "";
    const problem = editor.problem();
    if (problem) {
      schemaError.textContent = problem;
      return;
    }
    const button = schemaForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const before = document.getElementById("schema-version").textContent;
      const schema = await api("/projects/" + projectId + "/schema", { method: "PUT", json: { fields: editor.value() } });
      showSchema(schema);
      closeEditor();
      schemaMessage.textContent = before === "version " + schema.version
        ? "Nothing changed."
        : "Saved as version " + schema.version + ". Runs started from now on use these fields.";
    } catch (failure) {
      schemaError.textContent = failure.message;
    } finally {
      button.disabled = false;
    }
  });

  /* ---------- start ---------- */

  if (documentsBusy()) documentsPoll.start(0);
  if (Array.from(runsBody.querySelectorAll("tr[data-status]")).some((row) => runActive(row.dataset.status))) {
    runsPoll.start(0);
  }
})();
