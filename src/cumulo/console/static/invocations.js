// cumulo console: the invocation list's auto-refresh, and From/To picking the custom range.
"use strict";

(() => {
  const box = document.getElementById("auto-refresh");
  const PERIOD_MS = 5000;
  let timer = null;
  let busy = false;

  function results() {
    return document.getElementById("invocations-results");
  }

  async function reload() {
    const current = results();
    // Replacing the table under the keyboard focus would lose it: wait for the next turn.
    if (busy || document.hidden || !current || current.contains(document.activeElement)) return;
    busy = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("partial", "1");
      const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (res.redirected || res.status === 401) {
        window.location.reload(); // the session ended: show the sign-in page
        return;
      }
      if (!res.ok) return;
      const tpl = document.createElement("template");
      tpl.innerHTML = (await res.text()).trim();
      const fresh = tpl.content.getElementById("invocations-results");
      if (fresh && results()) results().replaceWith(fresh);
    } catch (err) {
      // Offline for a moment: try again on the next turn.
    } finally {
      busy = false;
    }
  }

  function remember(on) {
    const url = new URL(window.location.href);
    if (on) url.searchParams.set("refresh", "1");
    else url.searchParams.delete("refresh");
    window.history.replaceState(null, "", url);
  }

  function run(on) {
    window.clearInterval(timer);
    timer = on ? window.setInterval(reload, PERIOD_MS) : null;
  }

  if (box) {
    box.addEventListener("change", () => {
      remember(box.checked);
      run(box.checked);
      if (box.checked) reload();
    });
    run(box.checked);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && box.checked) reload();
    });
  }

  const range = document.getElementById("range");
  for (const id of ["from", "to"]) {
    const input = document.getElementById(id);
    if (input && range) {
      input.addEventListener("change", () => {
        if (input.value) range.value = "custom";
      });
    }
  }
})();
