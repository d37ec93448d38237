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
(function () {
  // Results tables sort by the column whose header is clicked (again: the other way).
  var tables = document.querySelectorAll("table.sortable");
  for (var t = 0; t < tables.length; t++) {
    var heads = tables[t].querySelectorAll("th");
    for (var h = 0; h < heads.length; h++) heads[h].addEventListener("click", sortBy);
  }
  function sortBy(event) {
    var th = event.currentTarget, table = th.closest("table");
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-numeric") === "1";
    var up = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].textContent, y = b.cells[index].textContent;
      if (numeric) {
        var p = x === "" ? Infinity : +x, q = y === "" ? Infinity : +y;
        return up ? p - q : (q === Infinity ? -1 : p === Infinity ? 1 : q - p);
      }
      return up ? x.localeCompare(y) : y.localeCompare(x);
    });
    var all = th.parentNode.children;
    for (var i = 0; i < all.length; i++) all[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    for (var r = 0; r < rows.length; r++) body.appendChild(rows[r]);
  }
})();
