/* Projects page: create a project with its record fields, then open it. */
"use strict";

(function () {
  const h = window.histocr;
  const { api } = h;
  const form = document.getElementById("new-project");
  const error = document.getElementById("new-project-error");
  const defaults = h.readJSON("default-fields") || [];
  const names = document.getElementById("new-project-field-names");
  let editor = null;
  editor = h.schemaEditor(document.getElementById("new-project-fields"), defaults, {
    defaults,
    onChange: () => {
      if (editor) names.textContent = editor.value().map((f) => f.name).filter(Boolean).join(", ");
    },
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const name = form.elements.name.value.trim();
    if (!name) {
      error.textContent = "Please give the project a name.";
      form.elements.name.focus();
      return;
    }
    const problem = editor.problem();
    if (problem) {
      document.getElementById("new-project-schema").open = true;
      error.textContent = problem;
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const project = await api("/projects", {
        method: "POST",
        json: {
          name: name,
          description: form.elements.description.value.trim(),
          record_fields: editor.value(),
        },
      });
      window.location.assign("/projects/" + project.id);
    } catch (failure) {
      error.textContent = failure.message;
      button.disabled = false;
    }
  });
})();
