// Leave the Shopify admin's iframe for a page that refuses to be framed (the app approval).
(function () {
  var link = document.getElementById("leave");
  if (link) window.open(link.getAttribute("data-url"), "_top");
})();
