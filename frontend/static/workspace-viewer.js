/* The review workspace's scan viewer: the page image with zoom and pan (wheel, drag, pinch,
   buttons, keys), the lines' boxes and the crop box drawn over it in an SVG that uses the page
   image's own pixels as coordinates, so a box from the API lands where the OCR saw the line. */
"use strict";

(function () {
  const h = window.histocr;
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_SCALE = 4; // four screen pixels per scan pixel: enough for a diacritic
  const DRAG_SLOP = 4; // px a press may move and still count as a click on a box
  const KEY_PAN = 80;

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  /**
   * A viewer on the elements of the template: `viewport` (clips, takes the input), `stage`
   * (moved and scaled), `image`, `overlay` (the SVG). Callbacks: onBoxClick(lineId),
   * onBoxHover(lineId | null), onZoom(label).
   */
  function createViewer(parts, callbacks) {
    const { viewport, stage, image, overlay } = parts;
    const view = { width: 0, height: 0, scale: 1, tx: 0, ty: 0, fitted: true };
    let boxes = new Map();
    let fullUrl = null;
    let previewSide = 0; // longest side of the preview; beyond it the full image is loaded
    let usingFull = false;
    let hovered = null;
    let touched = false; // the reader zoomed or moved the page: no automatic fitting then

    /* ---------- geometry ---------- */

    function fitScale() {
      if (!view.width || !viewport.clientWidth) return 1;
      return Math.min(viewport.clientWidth / view.width, viewport.clientHeight / view.height);
    }

    function minScale() {
      return fitScale() / 2;
    }

    function clampPan() {
      // The page may not be pushed out of sight: at least a third of the view stays on it.
      const vw = viewport.clientWidth;
      const vh = viewport.clientHeight;
      const w = view.width * view.scale;
      const hgt = view.height * view.scale;
      const keepX = Math.min(w, vw) / 3;
      const keepY = Math.min(hgt, vh) / 3;
      view.tx = Math.min(vw - keepX, Math.max(keepX - w, view.tx));
      view.ty = Math.min(vh - keepY, Math.max(keepY - hgt, view.ty));
    }

    function apply(smooth) {
      clampPan();
      stage.classList.toggle("smooth", Boolean(smooth));
      stage.style.transform = "translate(" + view.tx + "px, " + view.ty + "px) scale(" + view.scale + ")";
      if (callbacks.onZoom) callbacks.onZoom(Math.round(view.scale * 100) + " %");
      maybeLoadFull();
    }

    function maybeLoadFull() {
      // The preview is small (fast to load); zoomed in beyond its pixels, the scan itself.
      if (usingFull || !fullUrl || !previewSide) return;
      if (Math.max(view.width, view.height) * view.scale > previewSide * 1.15) {
        usingFull = true;
        // Swapped in once loaded, so the preview stays on screen meanwhile.
        const wanted = fullUrl;
        const loader = new Image();
        loader.addEventListener("load", () => {
          if (fullUrl === wanted) image.src = wanted;
        });
        loader.src = wanted;
      }
    }

    function zoomAt(factor, cx, cy, smooth) {
      const next = Math.max(minScale(), Math.min(MAX_SCALE, view.scale * factor));
      const ratio = next / view.scale;
      view.tx = cx - (cx - view.tx) * ratio;
      view.ty = cy - (cy - view.ty) * ratio;
      view.scale = next;
      view.fitted = false;
      apply(smooth);
    }

    function zoomBy(factor) {
      touched = true;
      zoomAt(factor, viewport.clientWidth / 2, viewport.clientHeight / 2, true);
    }

    function fit() {
      view.scale = fitScale();
      view.tx = (viewport.clientWidth - view.width * view.scale) / 2;
      view.ty = (viewport.clientHeight - view.height * view.scale) / 2;
      view.fitted = true;
      apply(true);
    }

    function fitWidth() {
      view.scale = viewport.clientWidth / view.width;
      view.tx = 0;
      view.fitted = false;
      apply(true);
    }

    /** Fill the view's width with a region (the text the OCR read), from its top; only while
     * the reader has not moved the page themselves. */
    function fitRegion(bbox) {
      if (!bbox || !view.width || touched) return;
      const [x0, y0, x1] = bbox;
      const vw = viewport.clientWidth;
      view.scale = Math.max(fitScale(), Math.min(MAX_SCALE, (vw * 0.98) / Math.max(1, x1 - x0)));
      view.tx = (vw - (x1 - x0) * view.scale) / 2 - x0 * view.scale;
      view.ty = -y0 * view.scale + 6;
      view.fitted = false;
      apply(false);
    }

    /** Bring a box into view; `zoom`: also make a line too small to read readable. */
    function reveal(bbox, zoom) {
      if (!bbox || !view.width) return;
      const [x0, y0, x1, y1] = bbox;
      const vw = viewport.clientWidth;
      const vh = viewport.clientHeight;
      if (zoom) {
        // A line fills most of the view's width, or the view's height shows ~8 lines.
        const wanted = Math.min((vw * 0.92) / (x1 - x0), vh / 8 / Math.max(1, y1 - y0), MAX_SCALE);
        if (view.scale < wanted * 0.6 || view.scale > wanted * 2.5) {
          view.scale = Math.max(minScale(), wanted);
          view.fitted = false;
        }
      }
      const s = view.scale;
      const inside = x0 * s + view.tx >= 0 && x1 * s + view.tx <= vw &&
        y0 * s + view.ty >= 0 && y1 * s + view.ty <= vh;
      if (!inside || zoom) {
        view.tx = vw / 2 - ((x0 + x1) / 2) * s;
        view.ty = vh / 2 - ((y0 + y1) / 2) * s;
      }
      apply(true);
    }

    /* ---------- the page and its boxes ---------- */

    function setPage(page) {
      touched = false;
      view.width = Number(page.width) || 0;
      view.height = Number(page.height) || 0;
      stage.style.width = view.width + "px";
      stage.style.height = view.height + "px";
      // On a phone the view takes the page's shape (up to 40 % of the screen's height).
      if (view.width) viewport.style.aspectRatio = view.width + " / " + view.height;
      overlay.setAttribute("viewBox", "0 0 " + (view.width || 1) + " " + (view.height || 1));
      fullUrl = page.image_url || null;
      usingFull = !page.preview_url;
      previewSide = 0; // known once the preview has loaded
      image.alt = page.alt || "";
      const source = page.preview_url || page.image_url;
      if (!source) {
        image.hidden = true;
        image.removeAttribute("src");
      } else if (image.getAttribute("src") !== source) {
        image.hidden = true; // shown once it has loaded: no stale page under the new boxes
        image.src = source;
      }
      setBoxes([], null);
      if (view.width) fit();
    }

    image.addEventListener("load", () => {
      image.hidden = false;
      if (!usingFull) {
        previewSide = Math.max(image.naturalWidth, image.naturalHeight);
        maybeLoadFull();
      }
    });

    function setBoxes(lines, layout) {
      while (overlay.firstChild) overlay.removeChild(overlay.firstChild);
      boxes = new Map();
      hovered = null;
      const crop = layout && layout.crop;
      if (crop && view.width) {
        const [x0, y0, x1, y1] = crop;
        const W = view.width;
        const H = view.height;
        overlay.appendChild(svg("path", {
          class: "ws-outside",
          "fill-rule": "evenodd",
          d: "M0 0H" + W + "V" + H + "H0Z M" + x0 + " " + y0 + "V" + y1 + "H" + x1 + "V" + y0 + "Z",
        }));
        overlay.appendChild(svg("rect", {
          class: "ws-crop", x: x0, y: y0, width: x1 - x0, height: y1 - y0,
        }));
      }
      for (const line of lines) {
        if (!line.bbox) continue;
        const [x0, y0, x1, y1] = line.bbox;
        const rect = svg("rect", {
          class: "ws-box" + (line.kind === "header" ? " header" : ""),
          x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0),
          "data-line-id": line.id,
        });
        const title = svg("title", {});
        title.textContent = "Line " + (line.position + 1) + ": " + line.text;
        rect.appendChild(title);
        overlay.appendChild(rect);
        boxes.set(String(line.id), { rect, bbox: line.bbox });
      }
    }

    /** Give the boxes of `ids` the class `name` (selected, hover, related), the others not. */
    function mark(name, ids) {
      const wanted = new Set((ids || []).map(String));
      for (const [id, box] of boxes) box.rect.classList.toggle(name, wanted.has(id));
    }

    /* ---------- input: pointer, wheel, keys ---------- */

    const pointers = new Map();
    let press = null; // {x, y, target, moved}
    let pinch = null; // {distance, scale}

    function local(event) {
      const rect = viewport.getBoundingClientRect();
      return { x: event.clientX - rect.left, y: event.clientY - rect.top };
    }

    viewport.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      pointers.set(event.pointerId, local(event));
      viewport.setPointerCapture(event.pointerId);
      if (pointers.size === 1) {
        press = { ...local(event), moved: false };
      } else if (pointers.size === 2) {
        const [a, b] = Array.from(pointers.values());
        pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y), scale: view.scale };
        press = null;
      }
    });

    viewport.addEventListener("pointermove", (event) => {
      if (!pointers.has(event.pointerId)) {
        hoverAt(event);
        return;
      }
      const before = pointers.get(event.pointerId);
      const now = local(event);
      pointers.set(event.pointerId, now);
      if (pinch && pointers.size === 2) {
        const [a, b] = Array.from(pointers.values());
        const distance = Math.hypot(a.x - b.x, a.y - b.y);
        const factor = (pinch.scale * distance) / pinch.distance / view.scale;
        touched = true;
        zoomAt(factor, (a.x + b.x) / 2, (a.y + b.y) / 2, false);
        return;
      }
      if (!press) return;
      if (!press.moved && Math.hypot(now.x - press.x, now.y - press.y) < DRAG_SLOP) return;
      press.moved = true;
      touched = true;
      viewport.classList.add("dragging");
      view.tx += now.x - before.x;
      view.ty += now.y - before.y;
      view.fitted = false;
      apply(false);
    });

    function release(event) {
      if (!pointers.has(event.pointerId)) return;
      pointers.delete(event.pointerId);
      if (pointers.size < 2) pinch = null;
      viewport.classList.remove("dragging");
      if (press && !press.moved && event.type === "pointerup") {
        const id = boxAt(local(event));
        if (id !== null) callbacks.onBoxClick(id);
      }
      press = null;
    }
    viewport.addEventListener("pointerup", release);
    viewport.addEventListener("pointercancel", release);

    /** The line under a point of the viewport. Boxes of neighbouring lines overlap (ascenders,
     * descenders): the one whose middle is nearest the point wins, not the one drawn last. */
    function boxAt(point) {
      const x = (point.x - view.tx) / view.scale;
      const y = (point.y - view.ty) / view.scale;
      let best = null;
      let distance = Infinity;
      for (const [id, box] of boxes) {
        const [x0, y0, x1, y1] = box.bbox;
        if (x < x0 || x > x1 || y < y0 || y > y1) continue;
        const off = Math.abs(y - (y0 + y1) / 2);
        if (off < distance) {
          best = id;
          distance = off;
        }
      }
      return best;
    }

    function hoverAt(event) {
      const id = boxAt(local(event));
      if (id === hovered) return;
      hovered = id;
      if (callbacks.onBoxHover) callbacks.onBoxHover(id);
    }
    viewport.addEventListener("pointerleave", () => {
      if (hovered !== null && callbacks.onBoxHover) callbacks.onBoxHover(null);
      hovered = null;
    });

    viewport.addEventListener("wheel", (event) => {
      event.preventDefault();
      const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
      const delta = Math.max(-300, Math.min(300, event.deltaY * unit));
      const at = local(event);
      touched = true;
      zoomAt(Math.exp(-delta * 0.0018), at.x, at.y, false);
    }, { passive: false });

    viewport.addEventListener("keydown", (event) => {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      const step = event.shiftKey ? KEY_PAN * 4 : KEY_PAN;
      const moves = {
        ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step],
      };
      if (event.key === "+" || event.key === "=") zoomBy(1.25);
      else if (event.key === "-" || event.key === "_") zoomBy(0.8);
      else if (event.key === "0") fit();
      else if (event.key === "w") fitWidth();
      else if (moves[event.key]) {
        view.tx += moves[event.key][0];
        view.ty += moves[event.key][1];
        view.fitted = false;
        apply(true);
      } else return;
      touched = true;
      event.preventDefault();
    });

    if (window.ResizeObserver) {
      let last = "";
      new ResizeObserver(() => {
        const size = viewport.clientWidth + "x" + viewport.clientHeight;
        if (size === last || !view.width) return;
        last = size;
        if (view.fitted) fit();
        else apply(false);
      }).observe(viewport);
    }

    return {
      setPage,
      setBoxes,
      mark,
      reveal,
      fitRegion,
      fit: () => { touched = true; fit(); },
      fitWidth: () => { touched = true; fitWidth(); },
      zoomIn: () => zoomBy(1.25),
      zoomOut: () => zoomBy(0.8),
      scale: () => view.scale,
    };
  }

  h.workspace = Object.assign(h.workspace || {}, { createViewer });
})();
