// driftless web UI: live updates over server-sent events (and by a timer where the page asks),
// and the deploy key's copy button. The action buttons are plain forms: they need no script.
// Loaded from /assets (no inline script, no eval); the pages work without it, just not live.
"use strict";
(function () {
  var live = document.getElementById("live");
  var latest = 0;
  function refresh() {
    var mine = ++latest;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url, { headers: { Accept: "text/html" } })
      // 404: the GitSync was deleted, and the fragment says so.
      .then(function (r) { return r.ok || r.status === 404 ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        if (mine !== latest) { return; } // a newer refresh is under way
        // Keep the keyboard where it was: the same link or button (by id), found again in the
        // new markup.
        var el = document.activeElement;
        var href = live.contains(el) && el.getAttribute("href");
        var id = live.contains(el) && el.id;
        // Keep the tree's groups as the reader left them, opened or closed.
        var open = {};
        live.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
        live.innerHTML = html;
        live.querySelectorAll("details[id]").forEach(function (d) {
          if (d.id in open) { d.open = open[d.id]; }
        });
        var again = (id && document.getElementById(id)) ||
          (href && live.querySelector('a[href="' + CSS.escape(href) + '"]'));
        if (again) { again.focus(); }
        schedule();
      })
      .catch(schedule);
  }
  // A page whose fragment says `data-refresh="N"` refreshes itself after N seconds: the Pods
  // of a rollout and a hand-made drift change no GitSync, so no server-sent event tells it.
  var timer = null;
  function schedule() {
    if (timer) { clearTimeout(timer); timer = null; }
    var marked = live && live.querySelector("[data-refresh]");
    var seconds = marked ? parseInt(marked.getAttribute("data-refresh"), 10) : 0;
    if (seconds > 0) { timer = setTimeout(refresh, seconds * 1000); }
  }
  schedule();
  if (live && "EventSource" in window) {
    // The overview also follows its objects' health counts (`data-events`); other pages don't.
    var source = new EventSource(live.getAttribute("data-events") || "/events");
    source.addEventListener("change", refresh);
    // Connected: what changed between this page's render and now was missed (the stream only
    // tells of later changes) — e.g. the sync a "Sync now" started, done before the page
    // loaded — and so was what changed while reconnecting (the agent restarted).
    source.addEventListener("open", refresh);
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var text = document.getElementById(button.getAttribute("data-copy"));
    var said = document.getElementById(button.getAttribute("data-said"));
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function (message) { if (said) { said.textContent = message; } };
      var select = function () {
        window.getSelection().selectAllChildren(text);
        done("Selected: press Ctrl+C (⌘C) to copy.");
      };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(text.textContent.trim()).then(function () { done("Copied."); }, select);
      } else {
        select();
      }
    });
  });
})();
