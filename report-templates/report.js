(function () {
  "use strict";
  var body = document.body;
  var table = document.getElementById("findings-table");
  var rows = table ? Array.prototype.slice.call(table.tBodies[0].rows) : [];
  var sev = document.getElementById("f-sev");
  var host = document.getElementById("f-host");
  var fw = document.getElementById("f-fw");
  var chip = document.getElementById("f-req");
  var chipName = document.getElementById("f-req-name");
  var count = document.getElementById("f-count");
  var empty = document.getElementById("f-empty");
  var req = "";
  var filters = document.getElementById("filters");
  if (filters && table) { filters.hidden = false; }

  function apply() {
    var shown = 0;
    rows.forEach(function (r) {
      var ok = (!sev || !sev.value || r.getAttribute("data-sev") === sev.value) &&
        (!host || !host.value || r.getAttribute("data-host") === host.value) &&
        (!fw || !fw.value || r.getAttribute("data-fw").indexOf("|" + fw.value + "|") >= 0) &&
        (!req || r.getAttribute("data-req").indexOf("|" + req + "|") >= 0);
      r.hidden = !ok;
      if (ok) { shown++; }
    });
    if (count) {
      count.textContent = body.getAttribute("data-showing") + " " + shown + " / " + rows.length;
    }
    if (empty) { empty.hidden = shown !== 0; }
    if (chip) { chip.hidden = !req; }
    if (chipName) { chipName.textContent = req; }
    Array.prototype.forEach.call(document.querySelectorAll("a.req"), function (a) {
      a.classList.toggle("active", !!req && a.getAttribute("data-req") === req);
    });
  }

  function setReq(value, scroll) {
    req = value || "";
    apply();
    var hash = req ? "#req=" + encodeURIComponent(req) : "#findings";
    if (window.history && history.replaceState) { history.replaceState(null, "", hash); }
    if (scroll) {
      var target = document.getElementById("findings");
      if (target) { target.scrollIntoView(); }
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("a.req"), function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      setReq(a.getAttribute("data-req"), true);
    });
  });
  [sev, host, fw].forEach(function (s) { if (s) { s.addEventListener("change", apply); } });
  var clear = document.getElementById("f-req-clear");
  if (clear) { clear.addEventListener("click", function () { setReq("", false); }); }

  // Sorting: click a header; again to reverse.
  if (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      if (!th.hasAttribute("data-sort")) { return; }
      th.addEventListener("click", function () {
        var desc = !th.classList.contains("desc") && (th.classList.contains("asc") || th.hasAttribute("data-num"));
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove("asc", "desc"); });
        th.classList.add(desc ? "desc" : "asc");
        var num = th.hasAttribute("data-num");
        var key = function (r) {
          var c = r.cells[col];
          var v = c.hasAttribute("data-v") ? c.getAttribute("data-v") : c.textContent.trim();
          return num ? parseFloat(v) || 0 : v.toLowerCase();
        };
        var sorted = rows.slice().sort(function (a, b) {
          var x = key(a), y = key(b);
          var d = x < y ? -1 : x > y ? 1 : 0;
          return desc ? -d : d;
        });
        var tb = table.tBodies[0];
        sorted.forEach(function (r) { tb.appendChild(r); });
      });
    });
  }

  // Copy buttons: shown only when scripts run.
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var code = b.parentNode.querySelector("pre");
      var text = code ? code.textContent : "";
      var done = function () {
        var old = b.textContent;
        b.textContent = body.getAttribute("data-copied");
        setTimeout(function () { b.textContent = old; }, 1200);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
      } else {
        fallback(text);
        done();
      }
    });
  });
  function fallback(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    document.body.removeChild(ta);
  }

  // A link like index.html#req=pci-dss-4.0:1.2.5 opens the page filtered.
  var m = /^#req=(.+)$/.exec(window.location.hash);
  if (m) {
    try { req = decodeURIComponent(m[1]); } catch (e) { req = ""; }
  }
  apply();
})();
