/* histocr — helpers shared by the page scripts. No framework; all data goes in as text. */
"use strict";

window.histocr = (function () {
  const API = "/api/v1";
  const FINISHED_RUN = ["done", "partial", "failed"];
  const BUSY_DOCUMENT = ["uploaded", "ingesting"];

  /** The message of an API error body: {"detail": "…"} or pydantic's list of problems. */
  function errorMessage(body, status) {
    const detail = body && body.detail;
    if (typeof detail === "string" && detail) return detail;
    if (Array.isArray(detail) && detail.length) {
      return detail
        .map((d) => {
          const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
          return where ? where + ": " + d.msg : d.msg;
        })
        .join("; ");
    }
    return "the server answered " + status;
  }

  /** Parse a response body as JSON when it is JSON; null otherwise. */
  function parseBody(text) {
    try {
      return text ? JSON.parse(text) : null;
    } catch (_ignored) {
      return null;
    }
  }

  /** The logged-in browser's CSRF token (from the page), or null in single-user mode. */
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : null;
  }

  /** fetch() a JSON API path; rejects with an Error carrying the server's message. */
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    opts.headers.Accept = "application/json";
    // A logged-in browser proves each change comes from our own page (CSRF): the token is in
    // the page's <meta name="csrf-token">; a form on another site cannot read or send it.
    const csrf = csrfToken();
    if (csrf) opts.headers["X-CSRF-Token"] = csrf;
    let response;
    try {
      response = await fetch(API + path, opts);
    } catch (_network) {
      throw new Error("cannot reach the server");
    }
    const body = parseBody(await response.text());
    if (!response.ok) {
      const error = new Error(errorMessage(body, response.status));
      error.status = response.status;
      error.body = body; // e.g. a 409's `current`: what the other writer saved
      throw error;
    }
    return body;
  }

  /** Build an element: el("td", {className: "num"}, "text", childNode, …). Strings become text. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /** Replace an element's children. */
  function replaceChildren(node, ...children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    append(node, children);
  }

  /** A status badge, coloured by status. */
  function badge(status, large) {
    return el("span", { className: "badge status-" + status + (large ? " large" : "") }, status);
  }

  /** A progress bar with a label under it. */
  function progressBar(fraction, label, status, big) {
    const percent = Math.max(0, Math.min(100, Math.round((fraction || 0) * 100)));
    const bar = el("span");
    bar.style.width = percent + "%";
    return el(
      "div",
      {
        className: "progress" + (status ? " " + status : "") + (big ? " big" : ""),
        role: "progressbar",
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuenow": String(percent),
        "aria-label": label,
      },
      el("div", { className: "bar" }, bar),
      el("div", { className: "label" }, label),
    );
  }

  /** The label of a run's progress: "4 / 6 done · 1 failed · waiting for 1 document". */
  function progressLabel(progress) {
    const parts = [progress.done + " / " + progress.total + " steps done"];
    if (progress.failed) parts.push(progress.failed + " failed");
    if (progress.skipped) parts.push(progress.skipped + " skipped");
    if (progress.documents_waiting) {
      const n = progress.documents_waiting;
      parts.push("waiting for " + n + " document" + (n === 1 ? "" : "s") + " to be ingested");
    }
    return parts.join(" · ");
  }

  /** A fraction as a percentage with two decimals, or "—". */
  function pct(value) {
    return typeof value === "number" && isFinite(value) ? (value * 100).toFixed(2) + " %" : "—";
  }

  /** An estimated error rate: a guess, so no false precision; below 1 % it says so. */
  function estimatePct(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    return value < 0.01 ? "under 1 %" : (value * 100).toFixed(1) + " %";
  }

  /** An ISO timestamp as "2025-01-31 14:05" in the browser's time zone. */
  function formatDate(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (isNaN(date)) return iso;
    const two = (n) => String(n).padStart(2, "0");
    return (
      date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) +
      " " + two(date.getHours()) + ":" + two(date.getMinutes())
    );
  }

  function formatBytes(bytes) {
    if (typeof bytes !== "number") return "—";
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  /** Show a message in the page's banner ("error" or "notice"). */
  function showBanner(message, kind) {
    const banner = document.getElementById("banner");
    if (!banner) return;
    banner.className = "banner " + (kind || "error");
    replaceChildren(
      banner,
      el("span", {}, message),
      el("button", { type: "button", "aria-label": "Dismiss", onclick: hideBanner }, "×"),
    );
    banner.hidden = false;
  }

  function hideBanner() {
    const banner = document.getElementById("banner");
    if (banner) banner.hidden = true;
  }

  /** JSON that the template put into <script type="application/json" id="…">. */
  function readJSON(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /**
   * Call `step` every `interval` ms while it resolves to true. A failing step shows the error
   * in the banner and is retried after a longer pause; the banner clears when it works again.
   * start() while a step is in flight asks for one more step right after it.
   */
  function poll(step, interval) {
    let failures = 0;
    let timer = null;
    let busy = false;
    let wanted = false;

    function schedule(delay) {
      timer = setTimeout(tick, delay);
    }

    async function tick() {
      timer = null;
      busy = true;
      wanted = false;
      let again = true;
      try {
        again = await step();
        if (failures) hideBanner();
        failures = 0;
      } catch (error) {
        failures += 1;
        showBanner("Could not refresh: " + error.message + " (retrying)");
      }
      busy = false;
      if (again) schedule(interval * Math.min(1 + failures, 5));
      else if (wanted) schedule(0);
    }

    return {
      start(delay) {
        const wait = delay === undefined ? interval : delay;
        if (busy) {
          wanted = true;
        } else if (timer === null) {
          schedule(wait);
        } else if (wait === 0) {
          clearTimeout(timer);
          schedule(0);
        }
      },
    };
  }

  /** Upload a FormData with XMLHttpRequest, reporting progress (0…1); resolves to the JSON body. */
  function upload(path, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", API + path);
      xhr.setRequestHeader("Accept", "application/json");
      const csrf = csrfToken();
      if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        const body = parseBody(xhr.responseText);
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(body);
          return;
        }
        const failure = new Error(errorMessage(body, xhr.status));
        failure.status = xhr.status;
        failure.body = body;
        reject(failure);
      });
      xhr.addEventListener("error", () => reject(new Error("the upload was interrupted")));
      xhr.addEventListener("abort", () => reject(new Error("the upload was cancelled")));
      xhr.send(formData);
    });
  }

  /** Server-rendered <time datetime="…"> elements show UTC; show them in local time instead. */
  function localizeTimes(root) {
    for (const node of (root || document).querySelectorAll("time[datetime]")) {
      node.textContent = formatDate(node.getAttribute("datetime"));
      node.title = node.getAttribute("datetime");
    }
  }

  localizeTimes(document);

  return {
    API,
    FINISHED_RUN,
    BUSY_DOCUMENT,
    api,
    csrfToken,
    upload,
    el,
    replaceChildren,
    badge,
    progressBar,
    progressLabel,
    pct,
    estimatePct,
    formatDate,
    formatBytes,
    showBanner,
    hideBanner,
    readJSON,
    poll,
    localizeTimes,
  };
})();
