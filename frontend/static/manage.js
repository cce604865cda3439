/* Dialogs for renaming and deleting (project and run pages): a modal <dialog> that asks before
   anything is deleted, and a small form for a new name. Esc or Cancel answers "no". */
"use strict";

(function () {
  const h = window.histocr;
  const { el } = h;

  /** Show a modal built from `parts`; resolves with what `answer` gives when it closes. */
  function modal(parts, answer) {
    return new Promise((resolve) => {
      const dialog = el("dialog", { className: "dialog" });
      const form = el("form", { method: "dialog" }, parts);
      dialog.appendChild(form);
      document.body.appendChild(dialog);
      dialog.addEventListener("close", () => {
        const value = answer(dialog.returnValue, form);
        dialog.remove();
        resolve(value);
      });
      dialog.showModal();
      const first = form.querySelector("input, button[value=cancel]");  // never "delete" first
      if (first) first.focus();
    });
  }

  /** Cancel closes without submitting (Enter in a field submits the form's first submit button,
   *  which must be the one that saves). */
  function cancelButton() {
    return el("button", { type: "button", className: "secondary", value: "cancel",
      onclick: (event) => event.currentTarget.closest("dialog").close("cancel") }, "Cancel");
  }

  /**
   * Ask before doing something that cannot be undone. Resolves to true when confirmed.
   * options: {title, message, details: [text…], confirmLabel}
   */
  function confirmAction(options) {
    return modal(
      [
        el("h2", {}, options.title),
        el("p", {}, options.message),
        options.details && options.details.length
          ? el("ul", { className: "small" }, options.details.map((d) => el("li", {}, d)))
          : null,
        el("p", { className: "small subtle" }, "This cannot be undone."),
        el("div", { className: "dialog-buttons" },
          cancelButton(),
          el("button", { type: "submit", value: "confirm", className: "danger" },
            options.confirmLabel || "Delete")),
      ],
      (returned) => returned === "confirm",
    );
  }

  /** Ask for a new name. Resolves to the trimmed name, or null when cancelled. */
  function askName(options) {
    const id = "dialog-name-input";
    return modal(
      [
        el("h2", {}, options.title),
        el("div", { className: "field" },
          el("label", { for: id }, options.label || "Name"),
          el("input", { type: "text", id, name: "name", value: options.value || "",
            maxlength: String(options.maxlength || 200), autocomplete: "off" })),
        el("div", { className: "dialog-buttons" },
          cancelButton(),
          el("button", { type: "submit", value: "save" }, "Save")),
      ],
      (returned, form) => (returned === "save" ? form.elements.name.value.trim() : null),
    );
  }

  h.confirmAction = confirmAction;
  h.askName = askName;
})();
