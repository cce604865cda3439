/* The review workspace's records: the entries extracted from the page, each beside the line(s)
   it came from (hovering one lights them up on the scan), edited field by field, added and
   deleted, every change a new version as with the lines. */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api } = h;

  function failureText(error) {
    if (error.status === 403) return "You may read this project but not change it (ask its owner for editor access).";
    return error.message;
  }

  /** `ws`: the workspace's shared state (document.js); `box`: the panel's container. */
  function createRecords(ws, box) {
    let editing = null; // {id, name, input, original, version}
    let historyOf = null; // record id whose versions are shown

    function lineNumbers(record) {
      return ws.linesOfRecord(record).map((line) => el("button", {
        type: "button", className: "link-like", title: "Go to line " + (line.position + 1),
        onclick: () => ws.select(String(line.id), { reveal: true, focus: true, tab: "lines" }),
      }, String(line.position + 1)));
    }

    function fieldCell(record, field) {
      const value = record.fields[field.name];
      const shown = value === null || value === undefined ? "" : String(value);
      const cell = el("td", { className: "ws-field", dataset: { recordId: String(record.id), field: field.name } },
        el("span", {
          className: "ws-value", tabindex: "0", role: "button", lang: "de",
          "aria-label": field.name + ": " + (shown || "empty") + " (Enter to edit)",
        }, shown || el("span", { className: "subtle" }, "—")));
      return cell;
    }

    function table(result) {
      const fields = ws.fields.length ? ws.fields
        : Object.keys(result.records[0].fields).map((name) => ({ name, description: "" }));
      return el("div", { className: "table-wrap" }, el("table", { className: "records-table ws-records" },
        el("thead", {}, el("tr", {},
          el("th", { className: "num" }, "#"),
          el("th", { title: "The line(s) of the page the record was made from" }, "Line"),
          fields.map((f) => el("th", { title: f.description || null }, f.name)))),
        el("tbody", {}, result.records.map((record) => el("tr", {
          id: "record-" + record.id, dataset: { recordId: String(record.id) },
          className: record.source === "edit" ? "edited" : null,
        },
        el("td", { className: "num ws-record-number" }, String(record.position + 1),
          record.source === "edit" ? el("span", { className: "chip ok", title: "Changed or added by hand" }, "edited") : null,
          el("div", { className: "ws-record-actions" },
            typeof record.version === "number" ? el("button", {
              type: "button", className: "secondary small icon", onclick: () => showHistory(record),
              "aria-label": "Versions of record " + (record.position + 1), title: "Versions of this record",
            }, "↺") : null,
            el("button", {
              type: "button", className: "secondary small icon danger", onclick: () => remove(record),
              "aria-label": "Delete record " + (record.position + 1), title: "Delete this record (kept as a version)",
            }, "×"))),
        el("td", { className: "ws-record-lines" }, lineNumbers(record)),
        fields.map((f) => fieldCell(record, f)))))));
    }

    function render(result) {
      if (editing) return; // the open field is kept; the next refresh after saving redraws
      const why = !ws.extracts ? "This run does not extract records (it has no extraction stage)."
        : ws.extractStatus === "done" ? "No records were found on this page."
          : "No records yet: extraction is " + (ws.extractStatus || "waiting for the text") + ".";
      const adder = ws.extracts ? el("button", {
        type: "button", className: "secondary small", id: "add-record", onclick: add,
        title: "A new record for the selected line (or for the page, when no line is selected)",
      }, "Add a record") : null;
      h.replaceChildren(box,
        result.records.length ? table(result) : el("p", { className: "subtle" }, why),
        el("div", { className: "ws-actions" }, adder),
        el("div", { id: "record-history", className: "ws-detail small", hidden: true }));
      if (historyOf !== null) {
        const record = result.records.find((r) => String(r.id) === historyOf);
        if (record) showHistory(record);
        else historyOf = null;
      }
    }

    /* ---------- field editing ---------- */

    function startEdit(cell) {
      if (!ws.canEdit) {
        ws.flash("Read-only access: you may look at this page but not change its records.");
        return;
      }
      const record = ws.recordById(cell.dataset.recordId);
      if (!record) return;
      if (editing) commit();
      const name = cell.dataset.field;
      const value = record.fields[name] === null || record.fields[name] === undefined ? "" : String(record.fields[name]);
      const input = el("input", {
        type: "text", className: "ws-input", value, lang: "de", spellcheck: "false",
        "aria-label": name + " of record " + (record.position + 1) + " (Enter saves, Esc cancels)",
      });
      editing = { id: cell.dataset.recordId, name, input, original: value, version: record.version, cell };
      h.replaceChildren(cell, input);
      input.addEventListener("keydown", onKey);
      input.addEventListener("blur", (event) => {
        const to = event.relatedTarget;
        if (to && to.closest && to.closest("#palette")) return;
        if (editing && editing.input === input) commit();
      });
      input.addEventListener("focus", () => { ws.activeInput = input; });
      ws.activeInput = input;
      input.focus();
      input.select();
    }

    function onKey(event) {
      if (!editing) return;
      const cell = editing.cell;
      if (event.key === "Enter") {
        event.preventDefault();
        commit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        editing = null;
        ws.refreshView();
      } else if (event.key === "Tab") {
        // To the neighbouring field of the same record, saving this one.
        const cells = Array.from(cell.parentElement.querySelectorAll("td.ws-field"));
        const next = cells[cells.indexOf(cell) + (event.shiftKey ? -1 : 1)];
        if (!next) return;
        event.preventDefault();
        const target = { recordId: next.dataset.recordId, field: next.dataset.field };
        commit().then(() => {
          const again = box.querySelector('td.ws-field[data-record-id="' + target.recordId +
            '"][data-field="' + CSS.escape(target.field) + '"]');
          if (again) startEdit(again);
        });
      }
    }

    async function commit() {
      const edit = editing;
      editing = null;
      if (ws.activeInput === edit.input) ws.activeInput = null;
      const value = edit.input.value;
      if (value === edit.original) {
        ws.refreshView();
        return;
      }
      const record = ws.recordById(edit.id);
      edit.input.disabled = true;
      try {
        const saved = await api("/records/" + edit.id, {
          method: "PATCH", json: { fields: { [edit.name]: value }, version: edit.version },
        });
        if (record) Object.assign(record, saved);
      } catch (error) {
        if (error.status === 409 && error.body && error.body.current) {
          const now = error.body.current.fields ? error.body.current.fields[edit.name] : undefined;
          ws.flash("Changed by someone else: record " + (record ? record.position + 1 : "") + " is now at version " +
            error.body.current.version + (now !== undefined ? " and its " + edit.name + " reads “" + (now ?? "") + "”" : "") +
            ". Your “" + value + "” was not saved; the record has been reloaded.");
        } else {
          ws.flash("Not saved: " + failureText(error));
        }
      }
      await ws.refresh();
    }

    /* ---------- adding, deleting, versions ---------- */

    async function add() {
      try {
        const line = ws.selectedId ? Number(ws.selectedId) : null;
        const created = await api("/runs/" + ws.runId + "/pages/" + ws.pageId + "/records", {
          method: "POST", json: { fields: {}, line_id: line },
        });
        await ws.refresh();
        const first = box.querySelector('tr[data-record-id="' + created.id + '"] td.ws-field');
        if (first) startEdit(first);
      } catch (error) {
        ws.flash("Could not add a record: " + failureText(error));
      }
    }

    async function remove(record) {
      let deleted;
      try {
        deleted = await api("/records/" + record.id + "?version=" + encodeURIComponent(record.version ?? ""), {
          method: "DELETE",
        });
      } catch (error) {
        ws.flash("Could not delete record " + (record.position + 1) + ": " + failureText(error));
        return;
      }
      await ws.refresh();
      ws.flash("Record " + (record.position + 1) + " deleted (kept as a version).", "notice", {
        label: "Undo",
        run: () => restore(record.id, deleted.version),
      });
    }

    async function restore(id, version) {
      try {
        await api("/records/" + id + "/undo", { method: "POST", json: { version } });
        ws.flash("Record restored.", "notice");
      } catch (error) {
        ws.flash("Could not undo: " + failureText(error));
      }
      await ws.refresh();
    }

    async function showHistory(record) {
      historyOf = String(record.id);
      const panel = document.getElementById("record-history");
      if (!panel) return;
      panel.hidden = false;
      h.replaceChildren(panel, el("p", { className: "subtle" }, "Loading…"));
      let versions;
      try {
        versions = await api("/records/" + record.id + "/history");
      } catch (error) {
        h.replaceChildren(panel, el("p", { className: "error-text" }, "Could not load the history: " + error.message));
        return;
      }
      const close = () => { historyOf = null; panel.hidden = true; };
      h.replaceChildren(panel,
        el("div", { className: "ws-actions" },
          el("b", {}, "Versions of record " + (record.position + 1)),
          record.version > 1 ? el("button", {
            type: "button", className: "secondary small", onclick: () => restore(record.id, record.version),
          }, "Undo last change") : null,
          el("button", { type: "button", className: "secondary small", onclick: close }, "Close")),
        el("div", { className: "table-wrap" }, el("table", { className: "ws-history" },
          el("thead", {}, el("tr", {}, el("th", { className: "num" }, "Version"), el("th", {}, "Fields"),
            el("th", {}, "Source"), el("th", {}, "By"), el("th", {}, "When"))),
          el("tbody", {}, versions.slice().reverse().map((v) => el("tr", {},
            el("td", { className: "num" }, String(v.version)),
            el("td", { lang: "de" }, v.deleted ? el("i", {}, "deleted")
              : Object.entries(v.fields || {}).map(([k, x]) => x ? el("div", {}, el("span", { className: "subtle" }, k + ": "), String(x)) : null)),
            el("td", {}, v.source || "—"),
            el("td", {}, v.author || "—"),
            el("td", {}, h.formatDate(v.created_at))))))));
    }

    /* ---------- hover and keys ---------- */

    function rowLines(target) {
      const row = target.closest ? target.closest("tr[data-record-id]") : null;
      const record = row ? ws.recordById(row.dataset.recordId) : null;
      return record ? ws.linesOfRecord(record).map((line) => String(line.id)) : null;
    }

    box.addEventListener("mouseover", (event) => ws.relate(rowLines(event.target)));
    box.addEventListener("mouseleave", () => ws.relate(null));
    box.addEventListener("focusin", (event) => ws.relate(rowLines(event.target)));
    box.addEventListener("click", (event) => {
      const value = event.target.closest(".ws-value");
      if (value) startEdit(value.parentElement);
    });
    box.addEventListener("keydown", (event) => {
      const value = event.target.closest(".ws-value");
      if (value && (event.key === "Enter" || event.key === "F2")) {
        event.preventDefault();
        startEdit(value.parentElement);
      }
    });

    return { render, isEditing: () => editing !== null };
  }

  h.workspace = Object.assign(h.workspace || {}, { createRecords });
})();
