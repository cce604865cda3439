/* Project page, "Start a run": engines from GET /engines, the mLLM endpoint and model, which
   documents. The form says what the server would refuse before it is sent: a model that must be
   named, an endpoint that does not answer (POST /projects/{id}/runs/preflight, asked as the
   form changes). */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api } = h;
  const root = document.getElementById("project");
  const projectId = root.dataset.projectId;
  const runForm = document.getElementById("start-run-form");
  const runError = document.getElementById("start-run-error");
  const allDocuments = document.getElementById("run-all-documents");
  const choices = document.getElementById("run-document-choices");
  const modelField = runForm.elements.model;
  const modelHint = document.getElementById("llm-model-hint");
  const check = document.getElementById("llm-check");
  let engines = [];
  let endpointDefaults = {};

  /* ---------- documents ---------- */

  // Unticking "All documents" shows the documents unticked: the run covers those ticked.
  allDocuments.addEventListener("change", () => {
    choices.hidden = allDocuments.checked;
    if (!allDocuments.checked) {
      for (const box of choices.querySelectorAll('input[name="document"]')) box.checked = false;
    }
    scheduleCheck();
  });

  document.addEventListener("histocr:document-added", (event) => {
    const doc = event.detail;
    if (choices.querySelector('input[value="' + doc.id + '"]')) return;
    choices.appendChild(
      el("label", { className: "check", for: "run-doc-" + doc.id },
        el("input", { type: "checkbox", id: "run-doc-" + doc.id, name: "document", value: String(doc.id) }),
        " " + doc.filename),
    );
  });
  document.addEventListener("histocr:document-renamed", (event) => {
    const label = choices.querySelector('label[for="run-doc-' + event.detail.id + '"]');
    if (label) h.replaceChildren(label, label.querySelector("input"), " " + event.detail.filename);
  });
  document.addEventListener("histocr:document-deleted", (event) => {
    const label = choices.querySelector('label[for="run-doc-' + event.detail.id + '"]');
    if (label) label.remove();
  });

  /* ---------- engines ---------- */

  function fillEngines(select, stage, allowNone, noneLabel) {
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

  // The endpoints a run may choose, by name (GET /engines lists names and default models,
  // never URLs or keys).
  function fillEndpoints(select) {
    const parameter = engines
      .flatMap((engine) => engine.parameters)
      .find((p) => p.name === "endpoint" && p.choices);
    if (!parameter) return;
    endpointDefaults = parameter.choice_defaults || {};
    h.replaceChildren(select, parameter.choices.map((name) => el("option", { value: name }, name)));
    select.value = parameter.default;
  }

  function takes(engine, parameter) {
    return engines.some((e) => e.name === engine && e.parameters.some((p) => p.name === parameter));
  }

  function chosenEngines() {
    return ["ocr", "correct", "extract"].map((name) => runForm.elements[name].value).filter(Boolean);
  }

  /** Whether a chosen engine takes a model (an mLLM), and the endpoint's default model. */
  function modelNeeds() {
    const needs = chosenEngines().some((name) => engines.some((e) => e.name === name && e.needs_model));
    const fallback = (endpointDefaults[runForm.elements.endpoint.value] || {}).model || null;
    return { needs, fallback };
  }

  /** Say honestly what the model field does: unused, optional (with the default), or required. */
  function describeModel() {
    const { needs, fallback } = modelNeeds();
    modelField.required = needs && !fallback;
    if (!needs) {
      modelHint.textContent = "(only for mLLM engines: none is chosen)";
      modelField.placeholder = "not needed for the chosen engines";
    } else if (fallback) {
      modelHint.textContent = "(optional: left empty, the endpoint's default " + fallback + " is used)";
      modelField.placeholder = fallback + " (the endpoint's default)";
    } else {
      modelHint.textContent = "(required: this endpoint has no default model)";
      modelField.placeholder = "no default: name a model";
    }
  }

  async function loadEngines() {
    try {
      engines = await api("/engines");
      fillEngines(document.getElementById("ocr-engine"), "ocr", false);
      fillEngines(document.getElementById("correct-engine"), "correct", true, "none");
      document.getElementById("correct-engine").value = "";
      fillEngines(document.getElementById("extract-engine"), "extract", true);
      fillEndpoints(document.getElementById("llm-endpoint"));
      describeModel();
    } catch (failure) {
      runError.textContent = "Could not load the engines: " + failure.message;
    }
  }

  /* ---------- the request ---------- */

  /** The run request the form describes, or a problem to fix first. */
  function request() {
    const body = { name: runForm.elements.name.value.trim() };
    const chosen = {
      model: modelField.value.trim(),
      endpoint: runForm.elements.endpoint.value,
      recognizer: runForm.elements.recognizer ? runForm.elements.recognizer.value : "",
    };
    // The model, the endpoint and the recogniser go to every stage whose engine takes them.
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
      if (!body.document_ids.length) return { problem: "Choose at least one document." };
    }
    if (modelField.required && !chosen.model) {
      return { problem: "Name the mLLM model: the endpoint “" + chosen.endpoint + "” has no default model." };
    }
    return { body };
  }

  /* ---------- checking the endpoint while the form is filled in ---------- */

  let checkTimer = null;
  let checkNumber = 0;

  function scheduleCheck() {
    describeModel();
    clearTimeout(checkTimer);
    checkTimer = setTimeout(runCheck, 400);
  }

  function showCheck(kind, text) {
    check.className = "small " + (kind === "ok" ? "ok-text" : kind === "bad" ? "error-text" : "subtle");
    check.textContent = text;
  }

  /** Ask the server whether the run could start (only where an mLLM is chosen: the offline
   *  engines have nothing to reach). The newest answer wins. */
  async function runCheck() {
    const { needs } = modelNeeds();
    if (!needs) {
      showCheck("", "");
      return;
    }
    const wanted = request();
    if (wanted.problem) {
      showCheck("bad", wanted.problem);
      return;
    }
    const number = ++checkNumber;
    showCheck("", "Checking the endpoint…");
    try {
      const answer = await api("/projects/" + projectId + "/runs/preflight", { method: "POST", json: wanted.body });
      if (number !== checkNumber) return;
      const models = answer.stages.map((s) => s.model).filter(Boolean);
      showCheck("ok", "✓ The endpoint “" + runForm.elements.endpoint.value + "” answers and serves " +
        Array.from(new Set(models)).join(", ") + ".");
    } catch (failure) {
      if (number !== checkNumber) return;
      showCheck("bad", "✗ " + failure.message);
    }
  }

  for (const name of ["ocr", "correct", "extract", "endpoint", "extract_inputs", "extract_source"]) {
    runForm.elements[name].addEventListener("change", scheduleCheck);
  }
  modelField.addEventListener("change", scheduleCheck);
  choices.addEventListener("change", scheduleCheck);

  runForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    runError.textContent = "";
    const wanted = request();
    if (wanted.problem) {
      runError.textContent = wanted.problem;
      return;
    }
    const button = runForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const run = await api("/projects/" + projectId + "/runs", { method: "POST", json: wanted.body });
      window.location.assign("/runs/" + run.id);
    } catch (failure) {
      runError.textContent = failure.message;
      button.disabled = false;
    }
  });

  loadEngines();
})();
