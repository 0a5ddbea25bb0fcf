// cumulo console: live logs over server-sent events: an invocation's (wired here) and a
// build's (build.js uses window.cumuloFollowLog).
//
// The stream (data-stream-url on the <pre>) replays the stored lines, then sends new ones
// as they are written, then one `end` event with how it ended. EventSource reconnects by
// itself and resumes after the last line it saw (Last-Event-ID = seq).
"use strict";

// Follow the log into parts.log (a <pre>); parts.state, .jump, .trimmed are optional.
// hooks.onOpen(), hooks.onLine(item, received), hooks.onEnd(data, received) and
// hooks.onLost() (the stream closed for good before its end) are optional too.
window.cumuloFollowLog = function followLog(parts, hooks) {
  const { log, state, jump, trimmed } = parts;
  // The page keeps this many lines; older ones leave the view (the REST API has them all).
  const MAX_LINES = 10000;

  let pending = [];
  let scheduled = false;
  let received = 0;
  let dropped = 0;
  let ended = false;

  function say(text) {
    if (state) state.textContent = text;
  }

  if (!window.EventSource) {
    say("this browser cannot show live logs");
    return null;
  }

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  }

  function clock(ts) {
    return new Date(ts * 1000).toISOString().slice(11, 23);
  }

  function flush() {
    scheduled = false;
    if (!pending.length) return;
    const stick = atBottom();
    const frag = document.createDocumentFragment();
    for (const item of pending) {
      const line = document.createElement("span");
      line.className = "line " + item.stream;
      line.dataset.seq = String(item.seq);
      const ts = document.createElement("span");
      ts.className = "ts";
      ts.textContent = clock(item.ts) + " ";
      line.append(ts, item.text + "\n");
      frag.append(line);
    }
    pending = [];
    log.append(frag);
    let excess = log.childElementCount - MAX_LINES;
    while (excess-- > 0) {
      log.firstElementChild.remove();
      dropped++;
    }
    if (dropped && trimmed) {
      trimmed.hidden = false;
      trimmed.textContent = `Showing the latest ${MAX_LINES} lines; ${dropped} earlier ones are not shown.`;
    }
    log.dataset.lines = String(received);
    if (stick) {
      log.scrollTop = log.scrollHeight;
    } else if (jump) {
      jump.hidden = false;
    }
  }

  function queue(item) {
    pending.push(item);
    received++;
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }

  const source = new EventSource(log.dataset.streamUrl);

  source.addEventListener("open", () => {
    if (!ended) say("live");
    if (hooks.onOpen) hooks.onOpen();
  });

  source.addEventListener("log", (event) => {
    const item = JSON.parse(event.data);
    queue(item);
    if (hooks.onLine) hooks.onLine(item, received);
  });

  source.addEventListener("end", (event) => {
    const data = JSON.parse(event.data);
    ended = true;
    source.close();
    flush();
    log.dataset.ended = data.status;
    say(received ? `${received} line${received === 1 ? "" : "s"}` : "no log lines");
    if (hooks.onEnd) hooks.onEnd(data, received);
  });

  source.addEventListener("error", () => {
    if (ended) return;
    if (source.readyState === EventSource.CLOSED) {
      say("disconnected: reload the page to reconnect");
      if (hooks.onLost) hooks.onLost();
    } else {
      say("reconnecting…");
    }
  });

  log.addEventListener("scroll", () => {
    if (jump && atBottom()) jump.hidden = true;
  });
  if (jump) {
    jump.addEventListener("click", () => {
      log.scrollTop = log.scrollHeight;
      jump.hidden = true;
      log.focus();
    });
  }
  return source;
};

// The invocation page: the log, the status, and the live part of the page.
(() => {
  const log = document.getElementById("log");
  if (!log) return;
  const banner = document.getElementById("run-ended");
  const POLL_MS = 5000;

  function setStatus(status) {
    const el = document.getElementById("inv-status");
    if (!el) return;
    el.textContent = status;
    el.dataset.status = status;
    el.className = "status status-" + status;
  }

  // Swap in the page's live part (status, timings, result or error, terminate form) when
  // it changed; `force` after the end, even if focus is inside it.
  async function refreshLive(force) {
    const current = document.getElementById("inv-live");
    if (!current) return;
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    url.searchParams.delete("terminated");
    try {
      const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!res.ok || res.redirected) return;
      const tpl = document.createElement("template");
      tpl.innerHTML = (await res.text()).trim();
      const fresh = tpl.content.getElementById("inv-live");
      const now = document.getElementById("inv-live");
      if (!fresh || !now || fresh.dataset.state === now.dataset.state) return;
      const hadFocus = now.contains(document.activeElement);
      if (hadFocus && !force) return;
      now.replaceWith(fresh);
      if (hadFocus && banner && !banner.hidden) banner.focus();
    } catch (err) {
      // Offline for a moment: the next poll or the end event tries again.
    }
  }

  let poll = null;
  const source = window.cumuloFollowLog(
    {
      log,
      state: document.getElementById("log-state"),
      jump: document.getElementById("log-jump"),
      trimmed: document.getElementById("log-trimmed"),
    },
    {
      onLine(item, received) {
        const el = document.getElementById("inv-status");
        if (received === 1 && el && el.dataset.status === "queued") refreshLive(false);
      },
      onEnd(data) {
        window.clearInterval(poll);
        setStatus(data.status);
        if (banner) {
          banner.textContent = `Run ended: ${data.status}`;
          banner.dataset.status = data.status;
          banner.classList.add("status-" + data.status);
          banner.hidden = false;
        }
        refreshLive(true);
      },
      onLost() {
        window.clearInterval(poll);
      },
    },
  );
  if (source) poll = window.setInterval(() => refreshLive(false), POLL_MS);
})();
