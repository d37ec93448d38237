(function () {
  // Keeps what a user expanded, and where they were, across the page's refreshes.
  // The page works without it.
  try {
    var key = "ductaflow:" + location.pathname;
    var open = JSON.parse(sessionStorage.getItem(key) || "{}");
    var all = document.querySelectorAll("details[id]");
    for (var i = 0; i < all.length; i++) {
      var item = all[i];
      if (Object.prototype.hasOwnProperty.call(open, item.id)) item.open = open[item.id];
      item.addEventListener("toggle", function (event) {
        open[event.target.id] = event.target.open;
        sessionStorage.setItem(key, JSON.stringify(open));
      });
    }
    var y = sessionStorage.getItem(key + ":y");
    if (y !== null && !location.hash) window.scrollTo(0, +y);
    window.addEventListener("pagehide", function () {
      sessionStorage.setItem(key + ":y", String(window.scrollY));
    });
  } catch (e) { /* storage unavailable: nothing to remember */ }
})();
