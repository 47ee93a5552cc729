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
  const get = (o, path) => path.split(".").reduce((a, k) => (a == null ? a : a[k]), o);

  function apply(data) {
    document.querySelectorAll("[data-live]").forEach((el) => {
      const v = get(data, el.dataset.live);
      el.textContent = (fmt[el.dataset.fmt] || fmt.text)(v);
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
        for (const c of [d.name ? d.name + " (" + d.client + ")" : d.client || "", d.file, fmtBytes(d.sent), d.size ? Math.round((100 * d.sent) / d.size) + " %" : "–"]) {
          const td = document.createElement("td");
          td.textContent = c;
          tr.append(td);
        }
        return tr;
      }));
    }
  }

  // Charts: series kept in the page, one point per second, the last 600.
  const series = {};
  function push(name, v) {
    const s = (series[name] = series[name] || []);
    s.push(v == null ? 0 : v);
    if (s.length > 600) s.shift();
  }
  function draw() {
    document.querySelectorAll("svg.chart").forEach((svg) => {
      const names = svg.dataset.series.split(",");
      const all = names.flatMap((n) => series[n] || []);
      const max = Math.max(1, ...all, svg.dataset.max ? Number(svg.dataset.max) : 0);
      svg.replaceChildren(...names.map((n, k) => {
        const s = series[n] || [];
        const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
        p.setAttribute("d", s.map((v, i) => (i ? "L" : "M") + ((600 - s.length + i) / 600) * 300 + " " + (58 - (v / max) * 56)).join(" "));
        if (k) p.setAttribute("class", "b");
        return p;
      }));
    });
  }
  function record(m) {
    if (!m) return;
    push("cpu", m.cpu && m.cpu.total);
    const rx = (m.net || []).reduce((a, i) => a + i.rx_bps, 0), tx = (m.net || []).reduce((a, i) => a + i.tx_bps, 0);
    push("rx", rx); push("tx", tx);
    push("disk", m.disk && m.disk.busy_percent);
  }

  if (document.querySelector("[data-live],svg.chart,#downloads")) {
    fetch("/api/stats/history").then((r) => (r.ok ? r.json() : [])).then((h) => { (h || []).forEach(record); draw(); }).catch(() => {});
    const es = new EventSource("/events");
    es.addEventListener("pulse", (e) => {
      const data = JSON.parse(e.data);
      apply(data);
      record(data.machine);
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
