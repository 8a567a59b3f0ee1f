(function () {
  "use strict";
  var body = document.body;
  body.classList.add("js");
  var PAGE = 100;

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

  var dataEl = document.getElementById("table-data");
  var live = document.getElementById("live");
  if (!dataEl || !live) { return; }
  var D;
  try { D = JSON.parse(dataEl.textContent); } catch (e) { return; }
  // Row layout: [ip, hostname, port, proto, service, group, sev, failing, chips, controlSet, fix]
  // Chip layout: [check, status, sev, findingId, message?]
  var rows = D.rows;
  var tbody = document.querySelector("#findings-table tbody");
  var count = document.getElementById("f-count");
  var empty = document.getElementById("f-empty");
  var chip = document.getElementById("f-chip");
  var chipLabel = document.getElementById("f-chip-label");
  var chipName = document.getElementById("f-chip-name");
  var pInfo = document.getElementById("p-info");
  var sel = {
    sev: document.getElementById("f-sev"),
    status: document.getElementById("f-status"),
    grp: document.getElementById("f-grp"),
    check: document.getElementById("f-check"),
    fw: document.getElementById("f-fw")
  };
  var q = document.getElementById("f-q");
  live.hidden = false;
  document.getElementById("static-findings").hidden = true;

  function opt(select, value, label) {
    var o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    select.appendChild(o);
  }
  for (var s = D.sv.length - 1; s >= 0; s--) { opt(sel.sev, String(s), D.sv[s][1]); }
  D.gr.forEach(function (g, i) { opt(sel.grp, String(i), g); });
  opt(sel.grp, "-1", body.getAttribute("data-no-group"));
  D.ck.forEach(function (c, i) { opt(sel.check, String(i), c[1]); });
  D.fw.forEach(function (f) { opt(sel.fw, f[0], f[1]); });

  // Per control set: its frameworks, for the framework filter.
  var csFw = D.cs.map(function (set) {
    var out = {};
    set.forEach(function (c) { out[c.split(":")[0]] = true; });
    return out;
  });
  // Search text per row, built once.
  var text = rows.map(function (r) {
    var t = [r[0], r[1] || "", r[2] === null ? "" : r[2] + "/" + r[3], r[4] || "",
      r[5] >= 0 ? D.gr[r[5]] : "", r[10] >= 0 ? D.fx[r[10]] : ""];
    r[8].forEach(function (c) { t.push(D.ck[c[0]][0], D.ck[c[0]][1], c[3], c[4] || ""); });
    return t.join(" ").toLowerCase();
  });

  var special = null; // {kind: "req"|"fix"|"grp"|"host", value}
  var sortKey = "sev", sortDesc = true;
  var view = [];
  var page = 0;

  function ipKey(ip) {
    if (ip.indexOf(":") < 0) {
      return ip.split(".").map(function (n) { return ("00" + n).slice(-3); }).join(".");
    }
    return "z" + ip;
  }
  var keyFns = {
    sev: function (i) { return rows[i][7] * 10 + rows[i][6]; },
    host: function (i) { return ipKey(rows[i][0]); },
    port: function (i) { return rows[i][2] === null ? -1 : rows[i][2]; },
    service: function (i) { return (rows[i][4] || "").toLowerCase(); },
    group: function (i) { return rows[i][5] >= 0 ? D.gr[rows[i][5]].toLowerCase() : ""; }
  };

  function matches(i) {
    var r = rows[i];
    if (sel.sev.value !== "" && String(r[6]) !== sel.sev.value) { return false; }
    if (sel.status.value === "failing" && !r[7]) { return false; }
    if (sel.status.value === "waived" && r[7]) { return false; }
    if (sel.grp.value !== "" && String(r[5]) !== sel.grp.value) { return false; }
    if (sel.check.value !== "") {
      var c = Number(sel.check.value);
      if (!r[8].some(function (x) { return x[0] === c; })) { return false; }
    }
    if (sel.fw.value !== "" && !csFw[r[9]][sel.fw.value]) { return false; }
    if (special) {
      var v = special.value;
      if (special.kind === "req" && D.cs[r[9]].indexOf(v) < 0) { return false; }
      if (special.kind === "fix" && (r[10] < 0 || D.fx[r[10]] !== v)) { return false; }
      if (special.kind === "grp" && (v === "" ? r[5] !== -1 : (r[5] < 0 || D.gr[r[5]] !== v))) { return false; }
      if (special.kind === "host" && r[0] !== v) { return false; }
    }
    var needle = q.value.trim().toLowerCase();
    if (needle && text[i].indexOf(needle) < 0) { return false; }
    return true;
  }

  function apply() {
    view = [];
    for (var i = 0; i < rows.length; i++) { if (matches(i)) { view.push(i); } }
    var k = keyFns[sortKey];
    view.sort(function (a, b) {
      var x = k(a), y = k(b);
      var d = x < y ? -1 : x > y ? 1 : a - b;
      return sortDesc ? -d : d;
    });
    page = 0;
    if (count) { count.textContent = body.getAttribute("data-showing") + " " + view.length + " / " + rows.length; }
    if (empty) { empty.hidden = view.length !== 0; }
    if (special) {
      chip.hidden = false;
      chipLabel.textContent = body.getAttribute("data-filter-" + special.kind);
      chipName.textContent = special.value === "" && special.kind === "grp" ? body.getAttribute("data-no-group") : special.value;
    } else {
      chip.hidden = true;
    }
    draw();
  }

  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (txt !== undefined && txt !== null) { e.textContent = txt; }
    return e;
  }
  var headLabels = Array.prototype.map.call(document.querySelectorAll("#findings-table thead th"), function (th) { return th.textContent; });
  function cell(tr, n) {
    var td = el("td");
    td.setAttribute("data-label", headLabels[n]);
    tr.appendChild(td);
    return td;
  }

  function draw() {
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    if (page >= pages) { page = pages - 1; }
    var frag = document.createDocumentFragment();
    view.slice(page * PAGE, page * PAGE + PAGE).forEach(function (i) {
      var r = rows[i];
      var tr = el("tr", r[7] ? "failing" : "waived");
      tr.setAttribute("data-row", String(i));
      var sev = D.sv[r[6]];
      cell(tr, 0).appendChild(el("span", "badge sev-" + sev[0], sev[1]));
      var h = cell(tr, 1);
      h.appendChild(document.createTextNode(r[0]));
      if (r[1]) { h.appendChild(el("div", "note", r[1])); }
      cell(tr, 2).textContent = r[2] === null ? "-" : r[2] + "/" + r[3];
      cell(tr, 3).textContent = r[4] || "";
      cell(tr, 4).textContent = r[5] >= 0 ? D.gr[r[5]] : body.getAttribute("data-no-group");
      var checks = cell(tr, 5);
      r[8].forEach(function (c) {
        var st = D.st[c[1]];
        var sp = el("span", "chip-check st-" + st[0] + " sev-" + D.sv[c[2]][0], D.ck[c[0]][1]);
        sp.title = st[1] + " · " + D.ck[c[0]][0] + " · " + c[3];
        sp.id = "f-" + c[3];
        checks.appendChild(sp);
        if (c[4]) { checks.appendChild(el("div", "note", c[4])); }
        checks.appendChild(document.createTextNode(" "));
      });
      var fx = cell(tr, 6);
      if (r[10] >= 0) {
        var a = el("a", "fixlink", D.fn[r[10]] || D.fx[r[10]]);
        a.href = (D.base || "") + "#" + D.fx[r[10]];
        fx.appendChild(a);
      }
      frag.appendChild(tr);
    });
    tbody.textContent = "";
    tbody.appendChild(frag);
    pInfo.textContent = body.getAttribute("data-page").replace("{page}", String(page + 1)).replace("{pages}", String(pages));
    document.getElementById("p-prev").disabled = page === 0;
    document.getElementById("p-next").disabled = page >= pages - 1;
  }

  document.getElementById("p-prev").addEventListener("click", function () { page--; draw(); });
  document.getElementById("p-next").addEventListener("click", function () { page++; draw(); });
  Object.keys(sel).forEach(function (k) { sel[k].addEventListener("change", apply); });
  var timer = null;
  q.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, 120);
  });
  document.getElementById("f-chip-clear").addEventListener("click", function () {
    special = null;
    if (window.history && history.replaceState) { history.replaceState(null, "", "#findings"); }
    apply();
  });
  Array.prototype.forEach.call(document.querySelectorAll("#findings-table th[data-sort]"), function (th) {
    th.addEventListener("click", function () {
      var k = th.getAttribute("data-sort");
      if (sortKey === k) { sortDesc = !sortDesc; } else { sortKey = k; sortDesc = k === "sev"; }
      Array.prototype.forEach.call(document.querySelectorAll("#findings-table th"), function (c) { c.classList.remove("asc", "desc"); });
      th.classList.add(sortDesc ? "desc" : "asc");
      apply();
    });
  });

  // Deep links: #req=…, #fix=…, #grp=…, #host=… filter the table.
  function route() {
    var m = /^#(req|fix|grp|host)=(.*)$/.exec(window.location.hash);
    if (!m) { return false; }
    var value;
    try { value = decodeURIComponent(m[2]); } catch (e) { value = m[2]; }
    special = { kind: m[1], value: value };
    apply();
    Array.prototype.forEach.call(document.querySelectorAll("a.req"), function (a) {
      a.classList.toggle("active", special.kind === "req" && a.getAttribute("data-req") === value);
    });
    var target = document.getElementById("findings");
    if (target) { target.scrollIntoView(); }
    return true;
  }
  window.addEventListener("hashchange", route);
  if (!route()) { apply(); }
})();
