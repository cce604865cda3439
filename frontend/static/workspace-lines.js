/* The review workspace's lines: the page's text line by line, each with its diff against the
   ground truth and what a reviewer should know about it; corrected in place (Enter saves, Esc
   cancels, arrows or Tab to the neighbours), with the line's versions and undo beside it. */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api } = h;
  const LOW_CONFIDENCE = 0.75; // below it Tesseract's reading is flagged for a second look

  /** The diff of a line as marked text: insertions underlined, deletions struck through. */
  function diffOps(ops) {
    return ops.map((op) => {
      if (op.op === "equal") return op.gt;
      if (op.op === "insert") {
        return el("ins", { className: "diff-ins", title: "in the text, not in the ground truth" }, op.ocr);
      }
      if (op.op === "delete") {
        return el("del", { className: "diff-del", title: "in the ground truth, missing from the text" }, op.gt);
      }
      return el("span", { className: "diff-sub", title: "ground truth “" + op.gt + "” read as “" + op.ocr + "”" },
        el("del", {}, op.gt), el("ins", {}, op.ocr));
    });
  }

  function matches(ops) {
    return ops.every((op) => op.op === "equal");
  }

  /** Why a save failed, in words a reviewer can act on. */
  function failureText(error) {
    if (error.status === 403) return "You may read this project but not change it (ask its owner for editor access).";
    return "Not saved: " + error.message;
  }

  /**
   * The lines of the current page. `ws` is the workspace's shared state (document.js): its
   * `lineById`, `recordsOfLine`, `select`, `refresh`, `flash` and the display options.
   */
  function createLines(ws, list, empty, detail) {
    let nodes = new Map(); // line id → {li, text, diff, flags, conflict}
    let order = []; // line ids in page order
    let editing = null; // {id, input, original, version}
    let historyOpen = false;

    /* ---------- building ---------- */

    function chip(text, title, kind) {
      return el("span", { className: "chip" + (kind ? " " + kind : ""), title }, text);
    }

    function flags(line) {
      const out = [];
      if (line.kind === "header") out.push(chip("header", "A running head or page number, not an entry"));
      if (line.edited) {
        out.push(chip("corrected", "Corrected by hand (version " + line.version + "); the engine read: “" +
          (line.engine_text ?? "") + "”", "ok"));
      }
      if (typeof line.min_confidence === "number" && line.min_confidence < LOW_CONFIDENCE && !line.edited) {
        out.push(chip("unsure read " + Math.round(line.min_confidence * 100) + " %",
          "The OCR's confidence in the weakest word of this line: check it against the scan", "warn"));
      }
      if (line.unparsed && ws.extracts) {
        out.push(chip("no record", "Extraction made no record from this line: check whether an entry was missed", "warn"));
      }
      for (const record of ws.recordsOfLine(line.id)) {
        out.push(el("button", {
          type: "button", className: "chip link", title: "Show the record made from this line",
          tabindex: "-1", onclick: (event) => { event.stopPropagation(); ws.showRecord(record.id); },
        }, "record " + (record.position + 1)));
      }
      if (line.gt_unsure) {
        out.push(chip("alignment unsure", "Most of this line found no counterpart in the ground truth, so its comparison is a guess", "warn"));
      } else if (line.diff && ws.showDiff && matches(ws.normalized ? line.diff.normalized : line.diff.raw)) {
        out.push(chip("✓ matches", "Same as the ground truth" + (ws.normalized ? " (normalized)" : ""), "ok"));
      }
      if (!line.bbox) out.push(chip("no box", "This stage does not say where the line is on the scan"));
      return out;
    }

    function diffFor(line) {
      if (!line.diff || !ws.showDiff) return null;
      const ops = ws.normalized ? line.diff.normalized : line.diff.raw;
      if (matches(ops)) return null;
      return diffOps(ops);
    }

    function build(line) {
      const text = el("div", { className: "ws-text", lang: "de" });
      const diff = el("div", { className: "ws-diff", "aria-label": "Difference from the ground truth" });
      const flagBox = el("div", { className: "ws-flags" });
      const conflict = el("div", { className: "ws-conflict", role: "alert", hidden: true });
      const li = el("li", {
        className: "ws-line", id: "line-" + (line.position + 1), tabindex: "-1",
        dataset: { lineId: String(line.id) },
      },
      el("span", { className: "ws-ln", "aria-hidden": "true" }, String(line.position + 1)),
      el("div", { className: "ws-line-body" }, text, diff, flagBox, conflict));
      const node = { li, text, diff, flags: flagBox, conflict };
      update(node, line);
      return node;
    }

    function update(node, line) {
      if (!editing || editing.id !== String(line.id)) {
        h.replaceChildren(node.text, line.text.trim() ? line.text : el("span", { className: "subtle" }, "(empty line)"));
      }
      const marked = diffFor(line);
      node.diff.hidden = !marked;
      h.replaceChildren(node.diff, marked);
      h.replaceChildren(node.flags, flags(line));
      node.li.classList.toggle("header", line.kind === "header");
      node.li.classList.toggle("unsure", Boolean(line.gt_unsure));
      node.li.classList.toggle("edited", Boolean(line.edited));
      node.li.setAttribute("aria-label", "Line " + (line.position + 1) + ": " + line.text);
    }

    /** Show the page's lines; an edit in progress survives a refresh of the same page. */
    function render(lines) {
      const ids = lines.map((line) => String(line.id));
      const same = ids.length === order.length && ids.every((id, i) => id === order[i]);
      if (!same) {
        if (editing && !ids.includes(editing.id)) editing = null;
        const keep = editing ? nodes.get(editing.id) : null;
        nodes = new Map();
        for (const line of lines) {
          const id = String(line.id);
          nodes.set(id, keep && id === editing.id ? keep : build(line));
        }
        h.replaceChildren(list, ids.map((id) => nodes.get(id).li));
        order = ids;
        if (editing) editing.input.focus();
      }
      for (const line of lines) update(nodes.get(String(line.id)), line);
      empty.hidden = lines.length > 0;
      markSelected();
      renderDetail();
    }

    function markSelected() {
      let any = false;
      for (const [id, node] of nodes) {
        const on = id === ws.selectedId;
        any = any || on;
        node.li.classList.toggle("selected", on);
        if (on) node.li.setAttribute("aria-current", "true");
        else node.li.removeAttribute("aria-current");
        node.li.tabIndex = on ? 0 : -1;
      }
      // One tab stop for the whole list: the selected line, or the first one.
      if (!any && order.length) nodes.get(order[0]).li.tabIndex = 0;
    }

    function highlight(ids, name) {
      const wanted = new Set((ids || []).map(String));
      for (const [id, node] of nodes) node.li.classList.toggle(name, wanted.has(id));
    }

    function neighbour(id, step) {
      const at = order.indexOf(String(id));
      const next = at + step;
      return next >= 0 && next < order.length ? order[next] : null;
    }

    function focusLine(id) {
      const node = nodes.get(String(id));
      if (!node) return;
      node.li.focus({ preventScroll: true });
      node.li.scrollIntoView({ block: "nearest" });
    }

    /* ---------- editing ---------- */

    function startEdit(id, caretAtEnd) {
      id = String(id);
      if (editing && editing.id === id) {
        editing.input.focus();
        return;
      }
      if (editing) commit(editing);
      const line = ws.lineById.get(id);
      const node = nodes.get(id);
      if (!line || !node) return;
      if (!ws.canEdit) {
        ws.flash("Read-only access: you may look at this page but not correct it.");
        return;
      }
      ws.select(id, { reveal: true });
      const input = el("input", {
        type: "text", className: "ws-input", value: line.text, spellcheck: "false", lang: "de",
        "aria-label": "Text of line " + (line.position + 1) + " (Enter saves, Esc cancels)",
      });
      editing = { id, input, original: line.text, version: line.version };
      h.replaceChildren(node.text, input);
      node.li.classList.add("editing");
      input.addEventListener("keydown", (event) => onKey(event, id));
      input.addEventListener("blur", (event) => onBlur(event, id));
      input.addEventListener("focus", () => { ws.activeInput = input; });
      ws.activeInput = input;
      input.focus();
      const end = caretAtEnd === false ? 0 : input.value.length;
      input.setSelectionRange(end, end);
      node.li.scrollIntoView({ block: "nearest" });
    }

    function onKey(event, id) {
      if (!editing || editing.id !== id) return;
      const step = event.key === "ArrowUp" || (event.key === "Tab" && event.shiftKey) ? -1
        : event.key === "ArrowDown" || event.key === "Tab" ? 1 : 0;
      if (event.key === "Enter") {
        event.preventDefault();
        commit(editing);
        focusLine(id);
      } else if (event.key === "Escape") {
        event.preventDefault();
        cancel();
        focusLine(id);
      } else if (step) {
        const next = neighbour(id, step);
        if (next === null) return; // Tab past the last line leaves the list as usual
        event.preventDefault();
        startEdit(next); // saves this one first
      }
    }

    function onBlur(event, id) {
      // The character palette keeps the line open; anything else ends the edit and saves.
      const to = event.relatedTarget;
      if (to && to.closest && to.closest("#palette")) return;
      if (editing && editing.id === id && to !== editing.input) commit(editing);
    }

    function close(edit) {
      if (editing === edit) editing = null;
      if (ws.activeInput === edit.input) ws.activeInput = null;
      const node = nodes.get(edit.id);
      if (!node) return;
      node.li.classList.remove("editing");
      const line = ws.lineById.get(edit.id);
      if (line) update(node, line);
    }

    function cancel() {
      if (editing) close(editing);
    }

    async function commit(edit) {
      const text = edit.input.value;
      const line = ws.lineById.get(edit.id);
      close(edit);
      if (!line || text === edit.original) return;
      await save(line, text, edit.version);
    }

    async function save(line, text, version) {
      const node = nodes.get(String(line.id));
      // Shown at once, marked as saving, so the reviewer can go on to the next line.
      const before = { text: line.text };
      line.text = text;
      if (node) {
        update(node, line);
        node.li.classList.add("saving");
        node.conflict.hidden = true;
      }
      try {
        const saved = await api("/lines/" + line.id, { method: "PATCH", json: { text, version } });
        Object.assign(line, saved, { diff: line.diff });
        ws.noteSaved(line);
      } catch (error) {
        line.text = before.text;
        if (error.status === 409 && error.body && error.body.current) {
          showConflict(line, text, error.body.current);
        } else {
          ws.flash(failureText(error) + " (line " + (line.position + 1) + ")");
        }
      } finally {
        if (node) {
          node.li.classList.remove("saving");
          update(node, line);
        }
      }
      ws.refresh();
    }

    function showConflict(line, mine, current) {
      const node = nodes.get(String(line.id));
      if (!node) return;
      const reload = () => {
        Object.assign(line, { text: current.text, version: current.version });
        node.conflict.hidden = true;
        update(node, line);
        focusLine(line.id);
        ws.refresh();
      };
      const keepMine = () => {
        node.conflict.hidden = true;
        save(line, mine, current.version);
      };
      h.replaceChildren(node.conflict,
        el("p", {}, el("b", {}, "Changed by someone else. "),
          "Line " + (line.position + 1) + " now reads (version " + current.version + "): ",
          el("q", { className: "ws-current", lang: "de" }, current.text)),
        el("p", { className: "subtle" }, "Your text was not saved: ", el("q", { lang: "de" }, mine)),
        el("div", { className: "ws-actions" },
          el("button", { type: "button", className: "small", onclick: reload }, "Reload line"),
          el("button", { type: "button", className: "secondary small", onclick: keepMine }, "Save mine over it")));
      node.conflict.hidden = false;
    }

    /** Put a character where the caret is, in the line (or field) being edited. */
    function insert(char) {
      let input = ws.activeInput && document.body.contains(ws.activeInput) ? ws.activeInput : null;
      if (!input && ws.selectedId) {
        startEdit(ws.selectedId);
        input = editing && editing.input;
      }
      if (!input) {
        ws.flash("Choose a line first: the character is inserted where the cursor is.", "notice");
        return;
      }
      const start = input.selectionStart ?? input.value.length;
      const end = input.selectionEnd ?? start;
      input.setRangeText(char, start, end, "end");
      input.focus();
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }

    /* ---------- the selected line's versions ---------- */

    function renderDetail() {
      const line = ws.selectedId ? ws.lineById.get(ws.selectedId) : null;
      if (!line) {
        h.replaceChildren(detail, el("span", { className: "subtle" },
          "Select a line (click it, or its box on the scan) to correct it or see its versions."));
        return;
      }
      const versioned = typeof line.version === "number";
      const facts = ["Line " + (line.position + 1)];
      if (versioned) facts.push("version " + line.version);
      if (typeof line.confidence === "number") {
        facts.push("OCR confidence " + Math.round(line.confidence * 100) + " %");
      }
      h.replaceChildren(detail,
        el("span", {}, facts.join(" · ")),
        line.edited && line.engine_text !== undefined
          ? el("span", { className: "subtle ws-engine" }, " · the engine read ", el("q", { lang: "de" }, line.engine_text))
          : null,
        el("span", { className: "ws-actions" },
          versioned ? el("button", {
            type: "button", className: "secondary small", id: "line-history-toggle",
            "aria-expanded": historyOpen ? "true" : "false", onclick: toggleHistory,
          }, historyOpen ? "Hide history" : "History") : null,
          versioned && line.version > 1 ? el("button", {
            type: "button", className: "secondary small", id: "line-undo", onclick: () => undo(line),
            title: "Restore the text before the last change (kept as a new version)",
          }, "Undo last edit") : null),
        historyOpen ? el("div", { id: "line-history" }, el("p", { className: "subtle" }, "Loading…")) : null);
      if (historyOpen) loadHistory(line);
    }

    function toggleHistory() {
      historyOpen = !historyOpen;
      renderDetail();
    }

    async function loadHistory(line) {
      let versions;
      try {
        versions = await api("/lines/" + line.id + "/history");
      } catch (error) {
        versions = error;
      }
      const box = document.getElementById("line-history");
      if (!box || ws.selectedId !== String(line.id)) return;
      if (versions instanceof Error) {
        h.replaceChildren(box, el("p", { className: "error-text" }, "Could not load the history: " + versions.message));
        return;
      }
      h.replaceChildren(box, el("div", { className: "table-wrap" }, el("table", { className: "ws-history" },
        el("thead", {}, el("tr", {}, el("th", { className: "num" }, "Version"), el("th", {}, "Text"),
          el("th", {}, "Source"), el("th", {}, "By"), el("th", {}, "When"))),
        el("tbody", {}, versions.slice().reverse().map((v) => el("tr", {},
          el("td", { className: "num" }, String(v.version)),
          el("td", { lang: "de", className: "ws-history-text" }, v.text),
          el("td", {}, v.source === "engine" ? "engine" : v.source === "undo" ? "undo" : "edit"),
          el("td", {}, v.author || "—"),
          el("td", {}, h.formatDate(v.created_at))))))));
    }

    async function undo(line) {
      try {
        const restored = await api("/lines/" + line.id + "/undo", { method: "POST", json: { version: line.version } });
        Object.assign(line, restored, { diff: line.diff });
        ws.noteSaved(line);
        ws.flash("Line " + (line.position + 1) + " restored to “" + line.text + "”.", "notice");
      } catch (error) {
        if (error.status === 409 && error.body && error.body.current) {
          showConflict(line, line.text, error.body.current);
        } else {
          ws.flash(error.status === 403 ? failureText(error) : "Could not undo: " + error.message);
        }
      }
      const node = nodes.get(String(line.id));
      if (node) update(node, line);
      renderDetail();
      ws.refresh();
    }

    /* ---------- keys and pointer on the list ---------- */

    list.addEventListener("click", (event) => {
      const li = event.target.closest("li.ws-line");
      if (!li || event.target.closest("button, .ws-conflict, input")) return;
      startEdit(li.dataset.lineId);
    });
    list.addEventListener("keydown", (event) => {
      const li = event.target.closest("li.ws-line");
      if (!li || event.target !== li) return;
      const id = li.dataset.lineId;
      const step = event.key === "ArrowUp" ? -1 : event.key === "ArrowDown" ? 1 : 0;
      if (event.key === "Enter" || event.key === "F2") {
        event.preventDefault();
        startEdit(id);
      } else if (step) {
        const next = neighbour(id, step);
        if (next === null) return;
        event.preventDefault();
        ws.select(next, { reveal: true });
        focusLine(next);
      }
    });
    list.addEventListener("focusin", (event) => {
      const li = event.target.closest("li.ws-line");
      if (li && event.target === li && ws.selectedId !== li.dataset.lineId) {
        ws.select(li.dataset.lineId, { reveal: true });
      }
    });
    list.addEventListener("mouseover", (event) => {
      const li = event.target.closest("li.ws-line");
      ws.hover(li ? li.dataset.lineId : null);
    });
    list.addEventListener("mouseleave", () => ws.hover(null));

    return {
      render,
      markSelected,
      renderDetail,
      highlight,
      focusLine,
      startEdit,
      insert,
      isEditing: () => editing !== null,
      /** Save the line being edited (leaving the page must not lose it). */
      finish() {
        if (editing) commit(editing);
      },
      reset() {
        editing = null;
        historyOpen = false;
        order = [];
        nodes = new Map();
        h.replaceChildren(list);
      },
    };
  }

  h.workspace = Object.assign(h.workspace || {}, { createLines, diffOps });
})();
