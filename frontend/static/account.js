/* Account page: list, create and revoke the user's API tokens. */
"use strict";

(function () {
  const { api, el, replaceChildren, formatDate, showBanner } = window.histocr;
  const rows = document.getElementById("token-rows");
  const form = document.getElementById("new-token");
  const error = document.getElementById("new-token-error");

  async function load() {
    const tokens = await api("/tokens");
    if (!tokens.length) {
      replaceChildren(rows, el("tr", {}, el("td", { colSpan: 7, className: "subtle" }, "No tokens yet.")));
      return;
    }
    replaceChildren(
      rows,
      tokens.map((token) =>
        el(
          "tr",
          { dataset: { tokenId: String(token.id) } },
          el("td", {}, el("code", {}, token.prefix + "…")),
          el("td", {}, token.name || "—"),
          el("td", {}, token.read_only ? "read-only" : "read-write"),
          el("td", { className: "small" }, formatDate(token.created_at)),
          el("td", { className: "small" }, token.expires_at ? formatDate(token.expires_at) : "never"),
          el("td", { className: "small" }, formatDate(token.last_used_at)),
          el(
            "td",
            {},
            token.revoked_at
              ? el("span", { className: "subtle" }, "revoked")
              : el("button", { type: "button", className: "secondary", onclick: () => revoke(token) }, "Revoke"),
          ),
        ),
      ),
    );
  }

  async function revoke(token) {
    try {
      await api("/tokens/" + token.id, { method: "DELETE" });
      await load();
    } catch (failure) {
      showBanner(failure.message);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const days = form.elements.expires_days.value;
    try {
      const made = await api("/tokens", {
        method: "POST",
        json: {
          name: form.elements.name.value.trim(),
          read_only: form.elements.read_only.checked,
          expires_days: days ? Number(days) : null,
        },
      });
      document.getElementById("new-token-value").textContent = made.token;
      document.getElementById("new-token-secret").hidden = false;
      form.reset();
      await load();
    } catch (failure) {
      error.textContent = failure.message;
    }
  });

  load().catch((failure) => showBanner(failure.message));
})();
