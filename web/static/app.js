// AMWI dashboard: live numbers from one Server-Sent Events stream, small SVG charts.
// EventSource reconnects by itself; the server sends a retry hint.
"use strict";
(function () {
  const fmtBytes = (n) => {
    if (n == null || isNaN(n)) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : Math.round(n)) + " " + u[i];
  };
  const fmt = {
    pct: (v) => (v == null ? "–" : v.toFixed(0) + " %"),
    bytes: fmtBytes,
    rate: (v) => (v == null ? "–" : fmtBytes(v) + "/s"),
    num: (v) => (v == null ? "–" : String(v)),
    text: (v) => (v == null || v === "" ? "–" : String(v)),
    temp: (v) => (v == null ? "–" : v.toFixed(1) + " °C"),
    secs: (v) => (v == null ? "–" : Math.round(v) + " s"),
  };
  // count is "1 download", "2 downloads": the noun follows the number as it changes.
  const count = (v, noun) => (v == null ? "–" : v + " " + noun + (v === 1 ? "" : "s"));
  const get = (o, path) => path.split(".").reduce((a, k) => (a == null ? a : a[k]), o);

  function apply(data) {
    document.querySelectorAll("[data-live]").forEach((el) => {
      const v = get(data, el.dataset.live);
      el.textContent = el.dataset.fmt === "count" ? count(v, el.dataset.noun) : (fmt[el.dataset.fmt] || fmt.text)(v);
    });
    document.querySelectorAll("[data-bar]").forEach((el) => {
      const v = get(data, el.dataset.bar);
      el.style.width = (v == null ? 0 : Math.max(0, Math.min(100, v))) + "%";
    });
    document.querySelectorAll("[data-show]").forEach((el) => {
      el.hidden = !get(data, el.dataset.show);
    });
    const dl = document.getElementById("downloads");
    if (dl && data.downloads) {
      dl.replaceChildren(...data.downloads.map((d) => {
        const tr = document.createElement("tr");
        [d.name ? d.name + " (" + d.client + ")" : d.client || "", d.file, fmtBytes(d.sent), d.size ? Math.round((100 * d.sent) / d.size) + " %" : "–"].forEach((c, i) => {
          const td = document.createElement("td");
          td.className = ["", "wrap", "n", "n"][i]; // as the page's own rows
          td.textContent = c;
          tr.append(td);
        });
        return tr;
      }));
      // An empty table says nothing: the line under the heading does, until one starts.
      const none = data.downloads.length === 0;
      document.getElementById("downloads-table").hidden = none;
      document.getElementById("downloads-none").hidden = !none;
    }
  }

  // Machine charts (static/chart.js): the last 10 minutes, from /api/stats/series, then
  // one point per pulse. S holds the columns; t is Unix milliseconds.
  const SPAN = 600e3, S = { t: [], cpu: [], mem: [], busy: [], rd: [], wr: [], rx: [], tx: [], temp: [] };
  const charts = [...document.querySelectorAll("[data-chart]")].map((box) => {
    const ds = box.dataset;
    const c = window.AmwiChart(box, { title: ds.title, unit: ds.unit, max: Number(ds.max || 0), names: ds.names && ds.names.split(","),
      span: SPAN, area: !ds.names, zero: ds.unit !== "temp" });
    return () => c.set({ x: S.t, y: ds.chart.split(",").map((k) => S[k]) });
  });
  function trim() {
    let n = 0;
    while (n < S.t.length && S.t[n] < S.t[S.t.length - 1] - SPAN) n++;
    if (n) for (const k in S) S[k].splice(0, n);
  }
  function draw() { charts.forEach((f) => f()); }
  function record(m, net) {
    const t = m && Date.parse(m.time);
    if (!t || (S.t.length && t <= S.t[S.t.length - 1])) return;
    const d = m.disk || {};
    const v = { t, cpu: m.cpu && m.cpu.total, mem: m.memory && m.memory.used_percent, busy: d.busy_percent, rd: d.read_bps, wr: d.write_bps,
      rx: net && net.rx, tx: net && net.tx, temp: m.temp_c };
    for (const k in S) S[k].push(v[k] == null ? null : v[k]);
    trim();
  }
  if (charts.length) {
    fetch("/api/stats/series").then((r) => (r.ok ? r.json() : null)).then((h) => {
      if (!h || !h.t) return;
      // Pulses that came first stay; the history goes before them.
      let k = h.t.findIndex((t) => S.t.length && t >= S.t[0]);
      if (k < 0) k = h.t.length;
      for (const n in S) S[n] = (h[n] || []).slice(0, k).concat(S[n]);
      trim();
      draw();
    }).catch(() => {});
  }

  // Bars from a page's data block (<script type="application/json">: data, not code).
  const block = (id) => { const e = document.getElementById(id); return e && JSON.parse(e.textContent); };
  const bars = (id, unit, o, data) => {
    const box = document.getElementById(id);
    if (box) window.AmwiChart(box, Object.assign({ title: box.dataset.title, unit, type: "bar" }, o)).set(data);
  };
  const tr = block("traffic-data");
  if (tr) {
    const h = tr.hours || [], d = tr.days || [];
    const req = (b) => b.label + " · " + b.requests + " requests";
    bars("traffic-hours", "bytes", { steps: [1, 2, 3, 6, 12, 24] },
      { y: [h.map((b) => b.bytes)], t: h.map(req), l: h.map((b) => b.label.slice(11)), k: h.map((b) => Number(b.label.slice(11, 13))) });
    bars("traffic-days", "bytes", { steps: [1, 2, 7, 14] }, { y: [d.map((b) => b.bytes)], t: d.map(req), l: d.map((b) => b.label.slice(5)) });
  }
  const sy = block("sync-data");
  if (sy) {
    const t = sy.map((r) => "#" + r.id + " " + r.label + " · " + r.result), l = sy.map((r) => "#" + r.id), c = sy.map((r) => (r.result === "success" ? "" : "bad"));
    bars("sync-secs", "secs", {}, { y: [sy.map((r) => r.seconds)], t, l, c });
    bars("sync-bytes", "bytes", {}, { y: [sy.map((r) => r.bytes)], t, l, c });
  }

  if (document.querySelector("[data-live],[data-chart],#downloads")) {
    const es = new EventSource("/events");
    es.addEventListener("pulse", (e) => {
      const data = JSON.parse(e.data);
      apply(data);
      record(data.machine, data.net);
      draw();
      const st = document.getElementById("live-status");
      if (st) st.textContent = "live";
    });
    es.onerror = () => { const st = document.getElementById("live-status"); if (st) st.textContent = "reconnecting…"; };
  }
})();

// Copy buttons (the Overview's set-up command): <button data-copy="ID"> copies the text of
// #ID. navigator.clipboard exists only in a secure context (https, localhost); on a plain
// http LAN address the text is selected instead, for the user to copy.
(function () {
  const say = (id, msg) => {
    const st = document.querySelector('[data-copy-status="' + id + '"]');
    if (st) st.textContent = msg;
  };
  const select = (el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  };
  const fallback = (id, el) => {
    select(el);
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    say(id, ok ? "Copied" : "Select and copy");
  };
  document.querySelectorAll("button[data-copy]").forEach((btn) => {
    btn.addEventListener("click", () => {
      const id = btn.getAttribute("data-copy");
      const el = document.getElementById(id);
      if (!el) return;
      const text = el.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(() => say(id, "Copied"), () => fallback(id, el));
      } else {
        fallback(id, el);
      }
    });
  });
})();
