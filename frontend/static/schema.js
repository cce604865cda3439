/* The record-schema editor (new project form, project page): a list of fields, each with its
   name, what it means, an example and whether every entry gives it; reorder, add, remove. */
"use strict";

(function () {
  const h = window.histocr;
  const { el } = h;
  let made = 0;

  /**
   * Fill `container` with an editor for `fields` ([{name, description, required, example}]).
   * Returns {value(): the fields as edited (blank rows left out), reset(fields), focus()}.
   * `defaults` (optional) adds a button that restores them.
   */
  function schemaEditor(container, fields, options) {
    const opts = options || {};
    const list = el("ol", { className: "schema-fields" });

    function move(row, step) {
      const rows = Array.from(list.children);
      const index = rows.indexOf(row);
      const target = rows[index + step];
      if (!target) return;
      if (step < 0) list.insertBefore(row, target);
      else list.insertBefore(target, row);
      row.querySelector("input").focus();
      changed();
    }

    function changed() {
      Array.from(list.children).forEach((row, index) => {
        row.querySelector(".field-number").textContent = String(index + 1);
        row.querySelector(".move-up").disabled = index === 0;
        row.querySelector(".move-down").disabled = index === list.children.length - 1;
      });
      if (opts.onChange) opts.onChange();
    }

    function fieldRow(field) {
      made += 1;
      const id = "schema-field-" + made;
      const row = el("li", { className: "schema-field" },
        el("div", { className: "schema-field-head" },
          el("span", { className: "field-number", "aria-hidden": "true" }),
          el("div", { className: "field" },
            el("label", { for: id + "-name" }, "Name ", el("span", { className: "subtle" }, "(a column of the CSV)")),
            el("input", { type: "text", id: id + "-name", name: "field-name", maxlength: "100",
              value: field.name || "", required: true, autocomplete: "off" })),
          el("div", { className: "schema-field-tools" },
            el("button", { type: "button", className: "secondary small move-up", title: "Move up",
              "aria-label": "Move this field up", onclick: () => move(row, -1) }, "↑"),
            el("button", { type: "button", className: "secondary small move-down", title: "Move down",
              "aria-label": "Move this field down", onclick: () => move(row, 1) }, "↓"),
            el("button", { type: "button", className: "secondary small remove-field", title: "Remove",
              "aria-label": "Remove this field", onclick: () => { row.remove(); changed(); } }, "✕"))),
        el("div", { className: "field" },
          el("label", { for: id + "-description" }, "What it means ", el("span", { className: "subtle" }, "(optional; shown to mLLM extractors)")),
          el("textarea", { id: id + "-description", name: "field-description", rows: "2", maxlength: "1000" },
            field.description || "")),
        el("div", { className: "field-row" },
          el("div", { className: "field" },
            el("label", { for: id + "-example" }, "Example as printed ", el("span", { className: "subtle" }, "(optional)")),
            el("input", { type: "text", id: id + "-example", name: "field-example", maxlength: "200",
              value: field.example || "", autocomplete: "off" })),
          el("label", { className: "check", for: id + "-required" },
            el("input", { type: "checkbox", id: id + "-required", name: "field-required", checked: !!field.required }),
            " Every entry gives it")),
      );
      row.addEventListener("input", () => { if (opts.onChange) opts.onChange(); });
      return row;
    }

    function reset(newFields) {
      h.replaceChildren(list, (newFields || []).map(fieldRow));
      changed();
    }

    const add = el("button", { type: "button", className: "secondary small add-field", onclick: () => {
      const row = fieldRow({});
      list.appendChild(row);
      changed();
      row.querySelector("input").focus();
    } }, "+ Add a field");
    const tools = el("div", { className: "schema-editor-tools" }, add,
      opts.defaults ? el("button", { type: "button", className: "secondary small",
        onclick: () => reset(opts.defaults) }, "Restore the city-directory fields") : null);
    h.replaceChildren(container, list, tools);
    reset(fields);

    return {
      value() {
        return Array.from(list.children).map((row) => ({
          name: row.querySelector('[name="field-name"]').value.trim(),
          description: row.querySelector('[name="field-description"]').value.trim(),
          example: row.querySelector('[name="field-example"]').value.trim(),
          required: row.querySelector('[name="field-required"]').checked,
        })).filter((field) => field.name || field.description || field.example);
      },
      reset,
      /** The first problem a person can fix before sending, or "" (the server checks again). */
      problem() {
        const fields = this.value();
        if (!fields.length) return "Give the records at least one field.";
        const seen = new Set();
        for (const field of fields) {
          if (!field.name) return "Every field needs a name.";
          const key = field.name.toLowerCase();
          if (seen.has(key)) return "The field “" + field.name + "” appears twice.";
          seen.add(key);
        }
        return "";
      },
    };
  }

  h.schemaEditor = schemaEditor;
})();
