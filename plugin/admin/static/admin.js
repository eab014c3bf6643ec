// Inside the Shopify admin: every navigation and form submission carries a fresh session token
// from App Bridge (a token lives one minute), and a page refused for want of one fetches one and
// reloads. Without App Bridge (WooCommerce links, local use, Shopify's CDN unreachable) links
// and forms work as plain HTML.
(function () {
  "use strict";
  function bridge() {
    return window.shopify && typeof window.shopify.idToken === "function" ? window.shopify : null;
  }
  function withToken(url, token) {
    var u = new URL(url, window.location.href);
    u.searchParams.set("id_token", token);
    return u.toString();
  }
  function local(url) {
    return new URL(url, window.location.href).origin === window.location.origin;
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link || !bridge() || link.target || event.defaultPrevented || event.button !== 0 ||
        event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || !local(link.href) ||
        link.getAttribute("href").charAt(0) === "#") {
      return;
    }
    event.preventDefault();
    bridge().idToken().then(function (token) {
      window.location.assign(withToken(link.href, token));
    }, function () {
      window.location.assign(link.href);
    });
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!bridge() || form.getAttribute("data-token-fresh") === "1") {
      return;
    }
    event.preventDefault();
    var submitter = event.submitter || null;
    bridge().idToken().then(function (token) {
      if ((form.getAttribute("method") || "get").toLowerCase() === "get") {
        // a GET form replaces the action's query with its fields: the token goes in as a field
        var field = form.querySelector("input[name=id_token]") || document.createElement("input");
        field.type = "hidden";
        field.name = "id_token";
        field.value = token;
        form.appendChild(field);
      }
      // getAttribute: a field named "action" (the editor's buttons) shadows form.action
      form.setAttribute("action", withToken(form.getAttribute("action") || window.location.href, token));
      form.setAttribute("data-token-fresh", "1");
      if (form.requestSubmit) {
        form.requestSubmit(submitter);
      } else {
        form.submit();
      }
    });
  });
  // Once only: a page refused even with a fresh token says why instead of reloading forever.
  var here = new URL(window.location.href);
  if (document.querySelector("[data-session-bounce]") && bridge() && !here.searchParams.has("bounced")) {
    bridge().idToken().then(function (token) {
      here.searchParams.set("bounced", "1");
      window.location.replace(withToken(here.toString(), token));
    });
  }
})();
