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
(function () {
  // Filter instances by status and by what they are called or run with. The page
  // lists them all without it.
  var search = document.getElementById("search");
  var filter = document.getElementById("status-filter");
  if (!search || !filter) return;
  var key = "ductaflow:filter:" + location.pathname;
  var sections = document.querySelectorAll("section.stage");
  function wanted(row, kind) {
    var status = row.getAttribute("data-status"), action = row.getAttribute("data-action");
    if (kind === "all") return true;
    if (kind === "attention") return status === "error" || status === "warning" || action === "blocked";
    if (kind === "blocked") return action === "blocked";
    if (kind === "ran") return action === "ran" || action === "failed";
    return status === kind;
  }
  function apply() {
    var words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var kind = filter.value, shown = 0, total = 0;
    for (var s = 0; s < sections.length; s++) {
      var rows = sections[s].querySelectorAll("details.inst"), here = 0;
      for (var r = 0; r < rows.length; r++) {
        var params = rows[r].querySelector(".params");
        var text = (rows[r].getAttribute("data-key") + " " +
                    (params ? params.textContent : "")).toLowerCase();
        var ok = wanted(rows[r], kind);
        for (var w = 0; ok && w < words.length; w++) ok = text.indexOf(words[w]) !== -1;
        rows[r].hidden = !ok;
        if (ok) here++;
      }
      total += rows.length; shown += here;
      var note = sections[s].querySelector(".shown");
      if (note) note.textContent = here === rows.length ? "" : " · " + here + " shown";
      sections[s].hidden = here === 0 && (words.length > 0 || kind !== "all");
    }
    document.getElementById("shown").textContent =
      shown === total ? "" : shown + " of " + total + " instances shown";
    try { sessionStorage.setItem(key, JSON.stringify([search.value, kind])); } catch (e) {}
  }
  try {
    var kept = JSON.parse(sessionStorage.getItem(key) || "null");
    if (kept) { search.value = kept[0]; filter.value = kept[1]; }
  } catch (e) { /* nothing kept */ }
  search.addEventListener("input", apply);
  filter.addEventListener("change", apply);
  if (search.value || filter.value !== "all") apply();
})();
