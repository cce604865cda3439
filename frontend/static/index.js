/* Projects page: create a project, then open it. */
"use strict";

(function () {
  const { api } = window.histocr;
  const form = document.getElementById("new-project");
  const error = document.getElementById("new-project-error");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const name = form.elements.name.value.trim();
    if (!name) {
      error.textContent = "Please give the project a name.";
      form.elements.name.focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const project = await api("/projects", {
        method: "POST",
        json: { name: name, description: form.elements.description.value.trim() },
      });
      window.location.assign("/projects/" + project.id);
    } catch (failure) {
      error.textContent = failure.message;
      button.disabled = false;
    }
  });
})();
