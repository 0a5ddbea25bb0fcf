// cumulo console: the function page's build log, followed live (logs.js), and the state
// badge, state notice and build facts swapped in when the build ends.
"use strict";

(() => {
  const log = document.getElementById("build-log");
  if (!log || !window.cumuloFollowLog) return;
  const banner = document.getElementById("build-ended");
  // What the build's end may change; each is swapped in from the fragment by its id.
  const SWAPPED = ["fn-state", "fn-state-notice", "function-facts", "build-live"];

  async function refresh() {
    try {
      const res = await fetch(log.dataset.fragmentUrl, {
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!res.ok || res.redirected) return;
      const tpl = document.createElement("template");
      tpl.innerHTML = (await res.text()).trim();
      for (const id of SWAPPED) {
        const fresh = tpl.content.getElementById(id);
        const now = document.getElementById(id);
        if (fresh && now && fresh.outerHTML !== now.outerHTML) now.replaceWith(fresh);
      }
    } catch (err) {
      // Offline for a moment: the page shows the end; a reload shows the rest.
    }
  }

  window.cumuloFollowLog(
    {
      log,
      state: document.getElementById("build-log-state"),
      jump: document.getElementById("build-log-jump"),
      trimmed: document.getElementById("build-log-trimmed"),
    },
    {
      onEnd(data) {
        if (banner) {
          banner.textContent =
            data.status === "succeeded"
              ? "Build succeeded"
              : `Build ${data.status}${data.reason ? ": " + data.reason : ""}`;
          banner.dataset.status = data.status;
          banner.classList.add("status-" + data.status);
          banner.hidden = false;
        }
        const live = document.getElementById("build-live");
        // Built before the page was loaded: the page shows it already.
        if (!live || live.dataset.status !== data.status) refresh();
      },
    },
  );
})();
