// Counts the page as opened once a person has it in front of them: a small POST after the page
// has been visible for a moment. A GET alone (mail privacy proxies, link scanners that fetch
// without running scripts) never counts.
(function () {
  "use strict";
  var body = document.body, url = body.getAttribute("data-opened"), sent = false;
  if (!url) { return; }
  function send() {
    if (sent || document.visibilityState !== "visible") { return; }
    sent = true;
    var form = new FormData();
    form.append("csrf", body.getAttribute("data-csrf"));
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, form))) {
      fetch(url, { method: "POST", body: form, credentials: "omit", keepalive: true });
    }
  }
  function soon() { setTimeout(send, 1000); }
  if (document.visibilityState === "visible") { soon(); }
  document.addEventListener("visibilitychange", soon);
  document.addEventListener("pointerdown", send, { once: true });
  document.addEventListener("keydown", send, { once: true });
})();
