/* Project page, "Your recogniser": the versions of the project's own fine-tuned Tesseract model
   (status, training progress, validation error against the shipped model, lines, iterations,
   time), Train and Cancel, the threshold that trains by itself, and the run form's choice of
   version. Polls while a training is queued or running. */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api, pct } = h;
  const root = document.getElementById("project");
  const section = document.getElementById("recognizer");
  if (!root || !section) return;
  const base = "/projects/" + root.dataset.projectId;
  const body = document.querySelector("#recognizer-versions tbody");
  const summary = document.getElementById("recognizer-summary");
  const error = document.getElementById("recognizer-error");
  const trainButton = document.getElementById("train-recognizer");
  const autoForm = document.getElementById("auto-train-form");
  const autoOn = document.getElementById("auto-train-on");
  const autoAfter = document.getElementById("auto-train-after");
  const choice = document.getElementById("ocr-recognizer");
  const ACTIVE = ["queued", "training"];
  let scrolled = false;

  function duration(seconds) {
    if (typeof seconds !== "number") return "—";
    if (seconds < 90) return Math.round(seconds) + " s";
    return (seconds / 60).toFixed(1) + " min";
  }

  function progressCell(version) {
    const p = version.progress || {};
    if (version.status === "queued") return h.progressBar(0, "waiting for a worker", "queued");
    if (version.status === "training") {
      if (p.phase !== "training" || !p.max_iterations) {
        return h.progressBar(0, "cutting the line images", "running");
      }
      const label = "iteration " + p.iteration + " / " + p.max_iterations +
        " · validation CER " + pct(p.validation_cer) + " (best " + pct(p.best_validation_cer) + ")";
      return h.progressBar(p.iteration / p.max_iterations, label, "running");
    }
    if (version.status === "done") {
      const label = (p.history || []).length + " validation(s), stopped at iteration " +
        (version.iterations_run ?? "—");
      return h.progressBar(1, label, "done");
    }
    return version.error ? el("span", { className: "small error-text" }, version.error) : "—";
  }

  function errorCell(version) {
    if (typeof version.validation_cer !== "number") return "—";
    const worse = version.validation_cer > version.base_validation_cer || !version.iterations;
    return el("span", {},
      el("strong", {}, pct(version.validation_cer)),
      el("div", { className: "small " + (worse ? "subtle" : "ok-text") },
        "shipped model " + pct(version.base_validation_cer) +
        (worse ? " (no gain: not used by default)" : "")),
      typeof version.training_cer === "number"
        ? el("div", { className: "small subtle" }, "training lines " + pct(version.training_cer))
        : null,
    );
  }

  function linesCell(version) {
    if (typeof version.lines !== "number") return "—";
    return el("span", {}, String(version.lines),
      el("div", { className: "small subtle" },
        version.verified_lines + " verified · " + version.ground_truth_lines + " ground truth" +
        (typeof version.validation_lines === "number" ? " · " + version.validation_lines + " held out" : "")));
  }

  function howTrained(version) {
    const p = version.parameters || {};
    const facts = [
      ["from", version.base_model],
      ["learning rate", p.learning_rate],
      ["at most", p.max_iterations + " iterations, measured every " + p.chunk_iterations],
      ["stops after", p.patience + " measurements without progress"],
      ["held out", Math.round((p.validation_fraction || 0) * 100) + " % of the lines"],
      ["started by", version.author],
      ["started", h.formatDate(version.created_at)],
      ["finished", h.formatDate(version.finished_at)],
      ["CPU time", duration(version.cpu_seconds)],
    ];
    if (version.progress && version.progress.skipped_characters) {
      facts.push(["left out", version.skipped_lines + " line(s) with " + version.progress.skipped_characters]);
    }
    const number = version.number;
    return el("details", { className: "small" }, el("summary", {}, "how it was trained"),
      el("dl", { className: "kv small" }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v ?? "—"))])),
      version.has_log ? el("a", { href: "/api/v1" + base + "/recognizers/" + number + "/log" }, "training log") : null,
      version.has_log && version.has_training_set ? " · " : null,
      version.has_training_set
        ? el("a", { href: "/api/v1" + base + "/recognizers/" + number + "/training-set.zip", download: "" }, "training set (.zip)")
        : null);
  }

  function row(version) {
    const actions = ACTIVE.includes(version.status)
      ? el("button", { type: "button", className: "danger small", onclick: () => cancel(version.number) }, "Cancel")
      : null;
    return el("tr", { id: "recognizer-" + version.number, dataset: { status: version.status } },
      el("td", {}, el("strong", {}, "v" + version.number),
        version.default ? el("div", {}, el("span", { className: "badge status-done" }, "default")) : null),
      el("td", {}, h.badge(version.status)),
      el("td", {}, progressCell(version)),
      el("td", { className: "num" }, errorCell(version)),
      el("td", { className: "num" }, linesCell(version)),
      el("td", { className: "num" }, version.iterations === null ? "—" : String(version.iterations)),
      el("td", { className: "num" }, duration(version.seconds)),
      el("td", {}, howTrained(version)),
      el("td", { className: "row-actions" }, actions));
  }

  function fillChoice(versions) {
    if (!choice) return;
    const current = choice.value;
    const done = versions.filter((v) => v.status === "done");
    const fallback = versions.find((v) => v.default);
    h.replaceChildren(choice,
      el("option", { value: "default" }, fallback
        ? "the project's default (v" + fallback.number + ")"
        : "the project's default (the shipped model until a trained version is as good)"),
      el("option", { value: "base" }, "the shipped model, as it is"),
      done.map((v) => el("option", { value: String(v.number) },
        "v" + v.number + " (validation CER " + pct(v.validation_cer) + ")")));
    if (Array.from(choice.options).some((o) => o.value === current)) choice.value = current;
  }

  function describe(state) {
    const lines = state.available;
    const parts = [
      lines.lines + " training line(s) now: " + lines.verified_lines + " from verified pages, " +
        lines.ground_truth_lines + " from ground truth (a training needs " + state.min_lines + ").",
      state.default_version
        ? "New runs read with version " + state.default_version + "."
        : "New runs read with the shipped " + state.base_model + " model.",
    ];
    if (state.auto_train_after) {
      parts.push(state.verified_since_last + " of " + state.auto_train_after +
        " newly verified lines before the next automatic training.");
    }
    summary.textContent = parts.join(" ");
    autoOn.checked = state.auto_train_after !== null;
    autoAfter.value = state.auto_train_after ?? "";
    autoAfter.disabled = !autoOn.checked;
  }

  async function refreshSettings() {
    try {
      describe(await api(base + "/recognizer-settings"));
    } catch (failure) {
      summary.textContent = "Could not read the recogniser's settings: " + failure.message;
    }
  }

  let wasActive = false;

  async function refresh() {
    const versions = await api(base + "/recognizers");
    h.replaceChildren(body, versions.length
      ? versions.map(row)
      : el("tr", { className: "empty-row" }, el("td", { colspan: "9", className: "empty" }, "No version yet.")));
    fillChoice(versions);
    const active = versions.some((v) => ACTIVE.includes(v.status));
    trainButton.disabled = active;
    if (wasActive && !active) refreshSettings();
    wasActive = active;
    if (!scrolled && location.hash.startsWith("#recognizer-")) {
      scrolled = true;
      const target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView({ block: "center" });
    }
    return active;
  }

  const poller = h.poll(refresh, 2000);

  async function cancel(number) {
    error.textContent = "";
    try {
      await api(base + "/recognizers/" + number + "/cancel", { method: "POST" });
    } catch (failure) {
      error.textContent = failure.message;
    }
    poller.start(0);
  }

  trainButton.addEventListener("click", async () => {
    error.textContent = "";
    trainButton.disabled = true;
    try {
      await api(base + "/recognizers", { method: "POST", json: {} });
    } catch (failure) {
      error.textContent = failure.message;
    }
    poller.start(0);
  });

  autoOn.addEventListener("change", () => {
    autoAfter.disabled = !autoOn.checked;
    if (autoOn.checked && !autoAfter.value) autoAfter.value = "200";
  });

  autoForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const value = autoOn.checked ? Number(autoAfter.value) : null;
    try {
      describe(await api(base + "/recognizer-settings", { method: "PUT", json: { auto_train_after: value } }));
    } catch (failure) {
      error.textContent = failure.message;
    }
  });

  refreshSettings();
  poller.start(0);
})();
