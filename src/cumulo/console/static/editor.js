// cumulo console: the code editor, the Create page's templates and Async execution switch,
// and the function page's Test panel. Each part starts only when its elements are on the
// page; without this script the forms still work (a plain textarea, a full page load).
"use strict";

(() => {
  const INDENT = "    ";

  // --- The editor: a transparent textarea over a highlighted <pre> -----------------------

  function grammarFor(name) {
    const prism = window.Prism;
    if (!prism || !prism.languages) return null;
    return prism.languages[name] || null;
  }

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  // Replace the selection with `text` so that the browser's undo history keeps the change.
  function insertText(area, text) {
    area.focus();
    const ok = document.execCommand && document.execCommand("insertText", false, text);
    if (!ok) {
      area.setRangeText(text, area.selectionStart, area.selectionEnd, "end");
      area.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }

  function lineStart(value, index) {
    return value.lastIndexOf("\n", index - 1) + 1;
  }

  // Tab / Shift+Tab: indent or dedent the selected lines (or insert 4 spaces at the caret).
  function indent(area, back) {
    const { value, selectionStart: start, selectionEnd: end } = area;
    const multiline = value.slice(start, end).includes("\n");
    if (!back && !multiline) {
      insertText(area, INDENT);
      return;
    }
    const from = lineStart(value, start);
    const to = end > start && value[end - 1] === "\n" ? end - 1 : end;
    const lines = value.slice(from, to).split("\n");
    const changed = lines.map((line) => (back ? line.replace(/^ {1,4}/, "") : INDENT + line));
    const replacement = changed.join("\n");
    area.setSelectionRange(from, to);
    insertText(area, replacement);
    if (multiline) {
      area.setSelectionRange(from, from + replacement.length);
    } else {
      const caret = Math.max(from, start - (lines[0].length - changed[0].length));
      area.setSelectionRange(caret, caret);
    }
  }

  // Enter keeps the line's indentation, one level more after an opening line
  // (":" in Python, "{" or "[" in JSON).
  function newline(area, language) {
    const { value, selectionStart: start } = area;
    const line = value.slice(lineStart(value, start), start);
    let lead = line.match(/^[ \t]*/)[0];
    const opens = language === "python" ? /:\s*$/ : /[{[]\s*$/;
    if (opens.test(line)) lead += INDENT;
    insertText(area, "\n" + lead);
  }

  function enhance(wrapper) {
    const area = wrapper.querySelector("textarea.code");
    const pre = wrapper.querySelector("pre.highlight");
    const code = pre && pre.querySelector("code");
    if (!area || !code) return;
    const language = area.dataset.language || "none";
    const grammar = grammarFor(language);
    wrapper.classList.add("enhanced");

    const paint = () => {
      const text = area.value;
      const html = grammar ? window.Prism.highlight(text, grammar, language) : escapeHtml(text);
      // A final newline is collapsed by <pre>: keep the line so both layers match.
      code.innerHTML = html + (text.endsWith("\n") || text === "" ? " " : "");
      pre.scrollTop = area.scrollTop;
      pre.scrollLeft = area.scrollLeft;
    };
    area.addEventListener("input", paint);
    area.addEventListener("scroll", () => {
      pre.scrollTop = area.scrollTop;
      pre.scrollLeft = area.scrollLeft;
    });

    // In a code editor (data-indent-tab) Tab indents; Esc, then Tab (or Shift+Tab), leaves
    // the field, so keyboard users are never trapped. Elsewhere Tab moves on as usual.
    const tabIndents = area.hasAttribute("data-indent-tab");
    let leaving = false;
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        leaving = true;
        return;
      }
      if (event.key === "Tab" && tabIndents && !event.ctrlKey && !event.altKey && !event.metaKey) {
        if (leaving) return;
        event.preventDefault();
        indent(area, event.shiftKey);
        return;
      }
      if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.altKey
          && !event.metaKey && !event.isComposing && language !== "none") {
        event.preventDefault();
        newline(area, language);
      }
      if (event.key !== "Shift") leaving = false;
    });
    area.addEventListener("blur", () => { leaving = false; });
    area.editorPaint = paint;
    paint();
  }

  // Set a textarea's text from a script and repaint its highlighting.
  function setCode(area, text) {
    area.value = text;
    if (area.editorPaint) area.editorPaint();
  }

  // --- The Create page ------------------------------------------------------------------

  function createPage(form) {
    const asyncBox = document.getElementById("async-execution");
    const timeout = document.getElementById("fn-timeout");
    const help = document.getElementById("timeout-help");
    const badge = document.getElementById("async-on-badge");

    const showMode = () => {
      const on = asyncBox.checked;
      timeout.max = on ? form.dataset.maxAsync : form.dataset.maxSync;
      timeout.placeholder = on ? timeout.dataset.placeholderAsync : timeout.dataset.placeholderSync;
      help.textContent = on ? help.dataset.async : help.dataset.sync;
      if (badge) badge.hidden = !on;
    };
    asyncBox.addEventListener("change", showMode);
    showMode();

    const dataNode = document.getElementById("blueprints-data");
    const all = dataNode ? JSON.parse(dataNode.textContent) : {};
    const fields = {
      name: document.getElementById("fn-name"),
      handler: document.getElementById("fn-handler"),
      timeout_s: timeout,
      memory_mb: document.getElementById("fn-memory"),
      description: document.getElementById("fn-description"),
    };
    let chosen = all[document.getElementById("fn-template").value] || null;

    document.querySelectorAll("a[data-template]").forEach((link) => {
      link.addEventListener("click", (event) => {
        const next = all[link.dataset.template];
        if (!next) return;
        event.preventDefault();
        for (const [key, input] of Object.entries(fields)) {
          // Keep a name the user typed; replace the one the last template filled in.
          if (key === "name" && input.value && (!chosen || input.value !== chosen.name)) continue;
          input.value = next[key];
        }
        setCode(document.getElementById("fn-code"), next.code);
        document.getElementById("fn-template").value = next.template;
        asyncBox.checked = next.async_run === "on";
        showMode();
        document.querySelectorAll("a[data-template]").forEach((other) => {
          if (other === link) other.setAttribute("aria-current", "true");
          else other.removeAttribute("aria-current");
        });
        chosen = next;
        const url = new URL(window.location.href);
        url.searchParams.set("template", next.template);
        window.history.replaceState(null, "", url);
        fields.name.focus();
      });
    });
  }

  // --- The Test panel -------------------------------------------------------------------

  function element(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children || []) {
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  function showError(box, code, message, status) {
    box.replaceChildren(element("div", { class: "alert", role: "alert", id: "test-error" }, [
      element("strong", { id: "test-error-code" }, [code]), ": ",
      element("span", { id: "test-error-message" }, [message]),
      status ? element("span", { class: "muted" }, [` (HTTP ${status})`]) : "",
    ]));
  }

  function requestLink(data) {
    return element("a", { id: "test-request-link", href: data.link }, [data.request_id]);
  }

  function showResult(box, data) {
    const done = !["queued", "running"].includes(data.status);
    if (!done) {
      box.replaceChildren(element("div", { class: "notice", id: "test-accepted" }, [
        element("p", {}, [
          "Accepted (", element("span", { class: `status status-${data.status}`, id: "test-status" },
            [data.status]), "). Request ",
          requestLink(data), ": open it to follow its logs live.",
        ]),
      ]));
      return;
    }
    const parts = [
      element("p", {}, [
        element("span", { class: `status status-${data.status}`, id: "test-status" }, [data.status]),
        " · ", element("span", { id: "test-duration" }, [formatDuration(data.duration_ms)]),
        " · ", element("span", { id: "test-memory" }, [
          data.peak_memory_mb === null ? "— MB" : `${data.peak_memory_mb.toFixed(1)} MB peak`]),
      ]),
      element("dl", { class: "facts" }, [
        element("dt", {}, ["Request"]), element("dd", {}, [requestLink(data)]),
        element("dt", {}, ["Duration"]), element("dd", {}, [formatDuration(data.duration_ms)]),
        element("dt", {}, ["Billed"]), element("dd", {}, [formatDuration(data.billed_duration_ms)]),
        element("dt", {}, ["Peak memory"]),
        element("dd", {}, [data.peak_memory_mb === null ? "—" : `${data.peak_memory_mb.toFixed(1)} MB`]),
      ]),
    ];
    if (data.error) {
      parts.push(element("div", { class: "alert", id: "test-error" }, [
        element("strong", { id: "test-error-code" }, [data.error.type || "Error"]), ": ",
        element("span", { id: "test-error-message" }, [data.error.message || ""]),
      ]));
      if (data.error.traceback) {
        parts.push(element("pre", { class: "block", id: "test-traceback" }, [data.error.traceback]));
      }
    } else {
      parts.push(element("h3", { class: "subhead" }, ["Result"]));
      parts.push(element("pre", { class: "block", id: "test-output" },
        [JSON.stringify(data.result, null, 2)]));
    }
    box.replaceChildren(...parts);
  }

  function testPanel(form) {
    const area = document.getElementById("test-event");
    const box = document.getElementById("test-result");
    const button = document.getElementById("invoke-button");
    const key = `cumulo:test-event:${form.dataset.function}`;
    try {
      const saved = window.localStorage.getItem(key);
      if (saved !== null) setCode(area, saved);
    } catch (err) { /* storage may be off: the page's default event stays */ }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let parsed;
      try {
        parsed = area.value.trim() ? JSON.parse(area.value) : {};
      } catch (err) {
        showError(box, "InvalidParameterValue.Json", `the event is not valid JSON: ${err.message}`);
        return;
      }
      try { window.localStorage.setItem(key, area.value); } catch (err) { /* ignore */ }
      const mode = (form.querySelector('input[name="mode"]:checked') || {}).value || "sync";
      button.disabled = true;
      button.textContent = "Invoking…";
      box.replaceChildren(element("p", { class: "muted" }, [
        mode === "sync" ? "Running… waiting for the result." : "Sending…"]));
      try {
        const response = await fetch(form.dataset.invokeUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            "X-CSRF-Token": csrfToken(),
          },
          body: JSON.stringify({ event: parsed, mode }),
        });
        const text = await response.text();
        let data = null;
        try { data = JSON.parse(text); } catch (err) { data = null; }
        if (!response.ok || !data || data.error && !data.request_id) {
          const error = (data && data.error) || {};
          const code = error.code || (response.status === 401 ? "AuthFailure" : "InternalError");
          const message = error.message || text.trim() || response.statusText;
          showError(box, code, message, response.status);
        } else {
          showResult(box, data);
        }
      } catch (err) {
        showError(box, "NetworkError", `the server could not be reached: ${err.message}`);
      } finally {
        button.disabled = false;
        button.textContent = "Invoke";
      }
    });
  }

  function start() {
    document.querySelectorAll(".editor").forEach(enhance);
    const create = document.getElementById("create-form");
    if (create) createPage(create);
    const test = document.getElementById("test-form");
    if (test) testPanel(test);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
