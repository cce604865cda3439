/* Document page: the review workspace of one document in a run, one page at a time (the scan
   with its line boxes, the lines, records, diff, texts and stages), kept live while the run is
   at work and deep-linkable as #page=3&line=12. */
"use strict";

(function () {
  const h = window.histocr;
  const { el, api } = h;
  const W = h.workspace;
  const data = h.readJSON("workspace-data");
  const $ = (id) => document.getElementById(id);
  const STAGE_TITLES = { ocr: "OCR", correct: "Post-correction", extract: "Extraction" };
  const ACTIVE = ["pending", "queued", "running"];

  let pages = data.pages;
  let current = -1;
  let runStatus = data.run.status;
  let docStatus = data.document.status;
  let pendingLine = null; // the line a deep link asked for, selected once the page is in
  let requested = 0; // page loads: only the newest answer is shown
  let shown = 0;
  let fittedFor = null; // the page the view was last fitted to
  const saved = new Map(); // line id → what this browser saved, newer than an older answer

  /** The state the parts share (see workspace-lines.js and workspace-records.js). */
  const ws = {
    runId: data.run.id,
    pageId: null,
    extracts: data.run.extracts,
    extractStatus: null,
    fields: data.run.fields,
    canEdit: true,
    result: null,
    lineById: new Map(),
    selectedId: null,
    showDiff: true,
    normalized: false,
    activeInput: null,
  };
  let recordsByLine = new Map();
  let linesByRecord = new Map();

  const viewer = W.createViewer(
    { viewport: $("viewport"), stage: $("stage"), image: $("page-image"), overlay: $("overlay") },
    {
      onBoxClick: (id) => ws.select(id, { focus: true, tab: "lines" }),
      onBoxHover: (id) => ws.hover(id, false),
      onZoom: (label) => { $("zoom-level").textContent = label; },
    });
  const lines = W.createLines(ws, $("lines"), $("lines-empty"), $("line-detail"));
  const records = W.createRecords(ws, $("page-records"));

  /* ---------- what the parts call ---------- */

  ws.recordsOfLine = (id) => recordsByLine.get(String(id)) || [];
  ws.linesOfRecord = (record) => (linesByRecord.get(String(record.id)) || []);
  ws.recordById = (id) => (ws.result ? ws.result.records.find((r) => String(r.id) === String(id)) : null);

  ws.select = (id, options) => {
    const opts = options || {};
    ws.selectedId = id === null ? null : String(id);
    const line = ws.lineById.get(ws.selectedId);
    viewer.mark("selected", line ? [line.id] : []);
    lines.markSelected();
    lines.renderDetail();
    if (!line) return;
    if (opts.tab) selectTab(opts.tab);
    if (opts.reveal || opts.focus) viewer.reveal(line.bbox, opts.reveal);
    if (opts.focus) lines.focusLine(line.id);
    const hash = "#page=" + pages[current].number + "&line=" + (line.position + 1);
    if (window.location.hash !== hash) history.replaceState(null, "", hash);
  };

  ws.hover = (id, reveal) => {
    const line = id === null ? null : ws.lineById.get(String(id));
    viewer.mark("hover", line ? [line.id] : []);
    lines.highlight(line ? [line.id] : [], "hover");
    if (line && reveal !== false) viewer.reveal(line.bbox, false);
  };

  ws.relate = (ids) => {
    viewer.mark("related", ids || []);
    lines.highlight(ids || [], "related");
    const first = ids && ids.length ? ws.lineById.get(ids[0]) : null;
    if (first) viewer.reveal(first.bbox, false); // only moves when the box is out of sight
  };

  ws.showRecord = (id) => {
    selectTab("records");
    const row = $("record-" + id);
    if (!row) return;
    row.scrollIntoView({ block: "nearest" });
    const value = row.querySelector(".ws-value");
    if (value) value.focus();
  };

  ws.noteSaved = (line) => saved.set(String(line.id), { version: line.version, text: line.text });
  ws.refresh = () => load(pages[current]);
  ws.refreshView = () => { if (ws.result) render(ws.result); };

  ws.flash = (message, kind, action) => {
    h.showBanner(message, kind);
    if (!action) return;
    const banner = $("banner");
    banner.insertBefore(el("button", {
      type: "button", className: "secondary small banner-action",
      onclick: () => { h.hideBanner(); action.run(); },
    }, action.label), banner.lastChild);
  };

  /* ---------- a page's result ---------- */

  function index(result) {
    // An answer older than this browser's own save keeps the save (the refresh after it follows).
    for (const line of result.lines) {
      const mine = saved.get(String(line.id));
      if (mine && typeof line.version === "number" && line.version < mine.version) Object.assign(line, mine);
    }
    ws.lineById = new Map(result.lines.map((line) => [String(line.id), line]));
    const byPosition = new Map(result.lines.map((line) => [line.position, line]));
    recordsByLine = new Map();
    linesByRecord = new Map();
    for (const record of result.records) {
      const ids = Array.isArray(record.line_ids) ? record.line_ids.map(String)
        : record.line_number ? [byPosition.get(record.line_number - 1)].filter(Boolean).map((l) => String(l.id)) : [];
      const found = ids.map((id) => ws.lineById.get(id)).filter(Boolean);
      linesByRecord.set(String(record.id), found);
      for (const line of found) {
        const key = String(line.id);
        recordsByLine.set(key, (recordsByLine.get(key) || []).concat([record]));
      }
    }
  }

  /** The box around all lines that have one. */
  function extent(list) {
    const boxes = list.map((line) => line.bbox).filter(Boolean);
    if (!boxes.length) return null;
    return [0, 1, 2, 3].map((i) => (i < 2 ? Math.min : Math.max)(...boxes.map((b) => b[i])));
  }

  function layoutOf(result) {
    const stage = result.stages.find((s) => s.page_layout && s.page_layout.crop);
    return stage ? stage.page_layout : null;
  }

  function render(result) {
    ws.result = result;
    index(result);
    const extract = result.stages.find((s) => s.stage === "extract");
    ws.extractStatus = extract ? extract.status : null;
    const layout = layoutOf(result);
    viewer.setBoxes(result.lines, layout);
    if (fittedFor !== ws.pageId && result.lines.length) {
      // First sight of the page: its text fills the view's width (the whole page is a key away).
      fittedFor = ws.pageId;
      if (pendingLine === null) viewer.fitRegion(layout ? layout.crop : extent(result.lines));
    }
    viewer.mark("selected", ws.selectedId && ws.lineById.has(ws.selectedId) ? [ws.selectedId] : []);
    lines.render(result.lines);
    records.render(result);
    $("lines-empty").textContent = pageUnsettled(result)
      ? "No text yet: the page is still being read." : "No lines: the run produced no text for this page.";
    $("records-count").textContent = ws.extracts ? "(" + result.records.length + ")" : "";
    $("tab-diff").hidden = !result.gt_cer;
    $("diff-options").hidden = !result.lines.some((line) => line.diff);
    W.renderScores($("page-scores"), result);
    W.renderDiffTab($("panel-diff"), result, ws, () => render(ws.result));
    W.renderTexts($("panel-texts"), result, STAGE_TITLES);
    h.replaceChildren($("page-stages"), W.stagesTable(result, STAGE_TITLES));
    renderFacts(result, layout);
    renderVerify(result);
    if (pendingLine !== null) {
      const line = result.lines.find((l) => l.position + 1 === pendingLine);
      if (line) {
        pendingLine = null;
        ws.select(line.id, { reveal: true, focus: true });
      }
    }
  }

  function renderFacts(result, layout) {
    const page = pages[current];
    const facts = [];
    if (page.width) facts.push(page.width + " × " + page.height + " px");
    facts.push(result.lines.length + " line" + (result.lines.length === 1 ? "" : "s"));
    if (typeof result.estimated_cer === "number") {
      facts.push(el("span", {
        title: "A guess of this page's character error rate made without ground truth, from the " +
          "engine's confidence and how plausible the words look; the run page lists pages by it",
      }, "estimated error " + h.estimatePct(result.estimated_cer)));
    }
    h.replaceChildren($("page-facts"), facts.flatMap((f, i) => (i ? [" · ", f] : [f])));
    const caption = [];
    if (layout) {
      caption.push("Dashed orange: the part of the scan the OCR read; shaded: left out (book edges, the facing page).");
      if (layout.angle) caption.push("The OCR straightened the page by " + layout.angle + "°.");
    }
    if (result.lines.length && !result.lines.some((l) => l.bbox)) {
      caption.push("This text has no line positions (an mLLM or imported text), so no boxes are drawn.");
    } else if (result.lines.length) {
      caption.push("Outlined: the lines; click one to go to its text.");
    }
    $("viewer-caption").textContent = caption.join(" ");
  }

  function renderVerify(result) {
    const box = $("verify-box");
    if (result.verified === undefined) {
      h.replaceChildren(box);
      return;
    }
    const path = "/runs/" + ws.runId + "/pages/" + ws.pageId + "/verify";
    const act = async (method) => {
      try {
        await api(path, { method });
      } catch (error) {
        ws.flash(error.status === 403 ? "Read-only access: you may not mark pages verified."
          : "Could not change the page's verified mark: " + error.message);
      }
      ws.refresh();
    };
    h.replaceChildren(box, result.verified
      ? [el("span", { className: "verified", title: "Checked by a person: the page has left the review queue" },
        "✓ Verified by " + result.verified.author + ", " + h.formatDate(result.verified.at)),
      el("button", { type: "button", className: "secondary small", id: "unverify-page", onclick: () => act("DELETE") }, "Un-verify")]
      : el("button", {
        type: "button", className: "small", id: "verify-page", onclick: () => act("POST"),
        title: "Say that a person has checked this page: it leaves the run's review queue",
      }, "Mark page verified"));
  }

  function pageUnsettled(result) {
    return !result || !result.stages.length || result.stages.some((s) => ACTIVE.includes(s.status));
  }

  async function load(page) {
    if (!page) return;
    const mine = ++requested;
    let result;
    try {
      result = await api("/runs/" + ws.runId + "/pages/" + page.id);
    } catch (failure) {
      if (mine === requested) h.showBanner("Could not load page " + page.number + ": " + failure.message);
      return;
    }
    if (mine < shown || page !== pages[current]) return;
    shown = mine;
    render(result);
  }

  /* ---------- pages ---------- */

  function show(at, lineNumber) {
    at = Math.max(0, Math.min(pages.length - 1, at));
    pendingLine = lineNumber || null;
    if (at === current && ws.result) {
      if (pendingLine !== null) render(ws.result);
      return;
    }
    lines.finish();
    current = at;
    const page = pages[at];
    ws.pageId = page.id;
    ws.result = null;
    ws.selectedId = null;
    lines.reset();
    $("prev-page").disabled = at === 0;
    $("next-page").disabled = at === pages.length - 1;
    $("page-input").value = String(page.number);
    // A text-only page has no image: none is asked for, and the lines take the whole width.
    const hasImage = Boolean(page.preview_url || page.image_url);
    $("ws-grid").classList.toggle("text-only", !hasImage);
    $("viewer").hidden = !hasImage;
    $("full-image").hidden = !page.image_url;
    if (page.image_url) $("full-image").href = page.image_url;
    if (hasImage) {
      viewer.setPage(Object.assign({}, page, {
        alt: "Scan of page " + page.number + " of " + document.querySelector("h1.filename").textContent,
      }));
    }
    $("lines-empty").textContent = "Loading…";
    $("lines-empty").hidden = false;
    load(page);
  }

  function fromHash() {
    const hash = window.location.hash.replace(/^#/, "");
    const legacy = /^page-(\d+)$/.exec(hash); // the links of older pages and the run page
    const params = new URLSearchParams(legacy ? "page=" + legacy[1] : hash);
    const number = Number(params.get("page")) || 1;
    const at = pages.findIndex((p) => p.number === number);
    return { at: at < 0 ? 0 : at, line: Number(params.get("line")) || null };
  }

  function go(at) {
    const page = pages[Math.max(0, Math.min(pages.length - 1, at))];
    if (page) window.location.hash = "page=" + page.number; // hashchange shows it
  }

  function setPages(list) {
    const had = pages.length;
    pages = list;
    $("doc-pages").textContent = list.length + " page" + (list.length === 1 ? "" : "s");
    $("page-count").textContent = String(list.length);
    $("page-input").max = String(Math.max(1, list.length));
    $("no-pages").hidden = list.length > 0;
    $("workspace").hidden = list.length === 0;
    if (current >= 0) $("next-page").disabled = current === list.length - 1;
    if (!had && list.length) {
      const target = fromHash();
      show(target.at, target.line);
    }
  }

  /* ---------- the run and the document, until both have settled ---------- */

  const watcher = h.poll(async () => {
    const run = await api("/runs/" + ws.runId);
    if (run.status !== runStatus) {
      runStatus = run.status;
      h.replaceChildren($("run-status"), h.badge(run.status));
    }
    ws.extracts = run.config.stages.some((s) => s.stage === "extract");
    if (h.BUSY_DOCUMENT.includes(docStatus)) {
      const doc = await api("/documents/" + data.document.id);
      docStatus = doc.status;
      h.replaceChildren($("document-status"), h.badge(doc.status));
      if (doc.error) $("no-pages-text").appendChild(el("span", { className: "error-text" }, " " + doc.error));
      if (doc.pages.length !== pages.length) setPages(doc.pages);
    }
    const settled = h.FINISHED_RUN.includes(runStatus) && !h.BUSY_DOCUMENT.includes(docStatus);
    if (current >= 0 && (settled || pageUnsettled(ws.result))) await load(pages[current]);
    return !settled;
  }, 3000);

  /* ---------- controls ---------- */

  function selectTab(key) {
    for (const tab of document.querySelectorAll("#page-text [role=tab]")) {
      const on = tab.id === "tab-" + key;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      $(tab.getAttribute("aria-controls")).hidden = !on;
    }
  }

  const tablist = document.querySelector("#page-text [role=tablist]");
  tablist.addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab) selectTab(tab.id.slice(4));
  });
  tablist.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const tabs = Array.from(tablist.querySelectorAll("[role=tab]")).filter((t) => !t.hidden);
    const at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    const next = tabs[(at + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    selectTab(next.id.slice(4));
    next.focus();
  });

  $("zoom-in").addEventListener("click", () => viewer.zoomIn());
  $("zoom-out").addEventListener("click", () => viewer.zoomOut());
  $("zoom-fit").addEventListener("click", () => viewer.fit());
  $("zoom-width").addEventListener("click", () => viewer.fitWidth());
  $("show-boxes").addEventListener("change", (event) => {
    $("overlay").classList.toggle("boxes-off", !event.target.checked);
  });
  $("show-diff").addEventListener("change", (event) => {
    ws.showDiff = event.target.checked;
    ws.refreshView();
  });
  $("lines-normalized").addEventListener("change", (event) => {
    ws.normalized = event.target.checked;
    ws.refreshView();
  });
  const palette = $("palette");
  palette.addEventListener("mousedown", (event) => event.preventDefault()); // the caret stays put
  palette.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-char]");
    if (button) lines.insert(button.dataset.char);
  });
  $("prev-page").addEventListener("click", () => go(current - 1));
  $("next-page").addEventListener("click", () => go(current + 1));
  $("page-input").addEventListener("change", (event) => {
    const at = pages.findIndex((p) => p.number === Number(event.target.value));
    if (at >= 0) go(at);
    else event.target.value = String(pages[current].number);
  });
  window.addEventListener("hashchange", () => {
    const target = fromHash();
    show(target.at, target.line);
  });
  document.addEventListener("keydown", (event) => {
    // Zoom from anywhere but a text field (the scan itself handles its own keys).
    const target = event.target;
    if (event.altKey || event.ctrlKey || event.metaKey || target.closest("input, textarea, select, #viewport")) return;
    if (event.key === "+" || event.key === "=") viewer.zoomIn();
    else if (event.key === "-") viewer.zoomOut();
    else return;
    event.preventDefault();
  });

  api("/me").then((me) => {
    ws.canEdit = !me.read_only;
    $("palette").hidden = !ws.canEdit;
  }).catch(() => {});

  if (pages.length) {
    const target = fromHash();
    show(target.at, target.line);
  }
  if (!h.FINISHED_RUN.includes(runStatus) || h.BUSY_DOCUMENT.includes(docStatus)) watcher.start();
})();
