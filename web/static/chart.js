// AMWI charts: our own small SVG line and bar charts with axes, gridlines, ticks in units,
// a title, and the value under the pointer (mouse, pen or touch). Colours come from
// app.css and its variables, so dark mode follows the dashboard. No library: the Overview
// stays light and works offline. app.js uses it as AmwiChart(box, options).set(data).
"use strict";
window.AmwiChart = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const el = (tag, a, parent, text) => {
    const e = document.createElementNS(NS, tag);
    for (const k in a) e.setAttribute(k, a[k]);
    if (text != null) e.textContent = text;
    parent.append(e);
    return e;
  };
  const BIN = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  // bytes prints n as Go's units.Bytes does: "512 B", "1.5 KiB".
  const bytes = (n) => {
    let i = 0;
    while (n >= 1024 && i < 5) { n /= 1024; i++; }
    return i ? n.toFixed(1) + " " + BIN[i] : Math.round(n) + " B";
  };
  const bin = (m, suf) => {
    let i = 0;
    while (m >= 1024 && i < 5) { m /= 1024; i++; }
    return [Math.pow(1024, i), " " + BIN[i] + suf];
  };
  // Each unit: v formats a value (tooltip), s picks the axis's scale and suffix for its
  // top (one unit per axis: "0 MiB/s, 2 MiB/s", never "900 KiB/s, 1.8 MiB/s"), m is the
  // smallest tick step (no "0.5 B").
  const units = {
    pct: { v: (x) => x.toFixed(1) + " %", s: () => [1, " %"], m: 0 },
    temp: { v: (x) => x.toFixed(1) + " °C", s: () => [1, " °C"], m: 0 },
    bytes: { v: bytes, s: (m) => bin(m, ""), m: 1 },
    bps: { v: (x) => bytes(x) + "/s", s: (m) => bin(m, "/s"), m: 1 },
    secs: {
      v: (s) => (s < 1 ? Math.round(s * 1e3) + " ms" : s < 60 ? +s.toFixed(1) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h"),
      s: (m) => (m < 1 ? [1e-3, " ms"] : m < 120 ? [1, " s"] : m < 7200 ? [60, " min"] : [3600, " h"]), m: 1e-3,
    },
  };
  // nice rounds a step up to 1, 2 or 5 times a power of ten.
  const nice = (r) => {
    const p = Math.pow(10, Math.floor(Math.log10(r))), f = r / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  };
  // Time axis steps, counted back from the newest point: 10 s … 1 day.
  const STEPS = [1e4, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5];
  const pad = (n) => String(n).padStart(2, "0");
  const hms = (t) => {
    const d = new Date(t);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  };
  const CW = 6.2; // a tick label character's width, px (11 px font)

  // o: title, unit (a key of units), type "line" (default) or "bar", names (one per
  // series, for the legend and tooltip), max (lowest top, e.g. 100 for %), zero (false: the
  // axis need not start at 0), span (ms: a line chart shows this much up to its last point),
  // area (fill under the first series), steps (bar label spacings, in bars).
  return function (box, o) {
    const u = units[o.unit] || units.pct, bar = o.type === "bar";
    const svg = el("svg", { role: "img", "aria-label": o.title }, box);
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    box.classList.add("chart");
    box.append(tip);
    // d: x (ms, line) or nothing (bars), y (one array per series), t (tooltip titles), l
    // (bar labels), k (bar label keys: a label shows where key % spacing is 0), c (bar
    // classes).
    let d = { y: [[]] }, g = null, px = null;

    function draw() {
      const W = box.clientWidth, H = box.clientHeight || 150;
      if (!W) return;
      svg.setAttribute("viewBox", "0 0 " + W + " " + H);
      svg.setAttribute("width", W);
      svg.setAttribute("height", H);
      svg.replaceChildren();
      const ttl = el("text", { class: "ttl", x: 8, y: 16 }, svg, o.title);
      (o.names || []).forEach((n, k) => {
        el("tspan", { class: "k" + k, dx: 10 }, ttl, "■");
        el("tspan", { dx: 3 }, ttl, n);
      });
      const n = bar ? d.y[0].length : (d.x || []).length;
      // y: the data's range, widened to nice steps.
      let lo = Infinity, hi = -Infinity;
      for (const s of d.y) for (const v of s) if (v != null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      lo = o.zero === false && isFinite(lo) ? lo : 0;
      hi = Math.max(hi, o.max || 0);
      const T = 28, B = 20, R = 12, ph = H - T - B;
      // The step is nice in the axis's unit, and the unit is chosen for the rounded top:
      // runs of 0.3–0.9 s get "0 s, 0.2 s … 1 s", not "0 ms … 1000 ms". a and b count steps.
      let sc, suf, st, a, b, top = Math.max(Math.abs(hi), Math.abs(lo));
      for (let k = 0; k < 2; k++) {
        [sc, suf] = u.s(top);
        b = hi > lo ? hi : lo + sc;
        st = Math.max(nice((b - lo) / sc / Math.max(2, Math.floor(ph / 24))) * sc, u.m);
        a = Math.floor(lo / st);
        b = Math.ceil(b / st);
        top = Math.max(-a, b) * st;
      }
      lo = a * st;
      hi = b * st;
      // Decimals enough for the step (1/2/5 × 10^n), so no two labels are alike.
      const dp = Math.max(0, -Math.floor(Math.log10(st / sc) + 1e-9)), ticks = [];
      // At most 100 ticks: past 2^53 i++ stands still (a sensor reading 10^16 °C).
      for (let i = a; i <= b && ticks.length <= 100; i++) ticks.push([i * st, +((i * st) / sc).toFixed(dp) + suf]);
      const L = 8 + CW * Math.max(...ticks.map((t) => t[1].length)), pw = W - L - R;
      const Y = (v) => T + ph - ((v - lo) / (hi - lo)) * ph;
      const ay = el("g", { class: "ax y" }, svg), ax = el("g", { class: "ax x" }, svg);
      for (const [v, s] of ticks) {
        el("line", { class: "gl", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }, ay);
        el("text", { x: L - 5, y: Y(v) + 4 }, ay, s);
      }
      el("line", { class: "axis", x1: L, x2: L, y1: T, y2: T + ph }, ay);
      el("line", { class: "axis", x1: L, x2: W - R, y1: T + ph, y2: T + ph }, ax);
      // xt puts a tick at x and its label under it, moved in from the edges to fit.
      const xt = (x, s) => {
        el("line", { class: "axis", x1: x, x2: x, y1: T + ph, y2: T + ph + 4 }, ax);
        el("text", { x: Math.min(Math.max(x, (CW * s.length) / 2 + 2), W - (CW * s.length) / 2 - 2), y: H - 4 }, ax, s);
      };
      g = { L, T, ph, pw, W, Y, n };
      if (bar) {
        const bw = (g.bw = pw / Math.max(n, 1));
        const lw = CW * Math.max(0, ...(d.l || []).map((s) => s.length)) + 10;
        const sp = (o.steps || [1, 2, 5, 10, 20, 50]).find((s) => (n / s) * lw <= pw) || n;
        for (let i = 0; i < n; i++) {
          // Any non-zero value is at least 2 px tall, so 2 KiB beside 2 GiB still shows;
          // the tooltip has the true value. Zero draws nothing.
          const v = d.y[0][i] || 0, x = L + i * bw, h = v ? Math.max(Y(lo) - Y(v), 2) : 0;
          el("rect", { class: "bx " + ((d.c && d.c[i]) || ""), x: x + bw * 0.1, y: Y(lo) - h, width: Math.max(bw * 0.8, 1), height: h }, svg);
          if (d.l && (d.k ? d.k[i] : n - 1 - i) % sp === 0) xt(x + bw / 2, d.l[i]);
        }
        return hover();
      }
      // The x axis counts back from the newest point, "−10 min … now", as Grafana's "Last
      // 10 minutes" does: with a span, a young history fills the window from the right,
      // and the empty part says since when there are samples rather than looking broken.
      const x1 = n ? d.x[n - 1] : Date.now(), x0 = o.span ? x1 - o.span : n > 1 ? d.x[0] : x1 - 6e4;
      const X = (g.X = (t) => L + ((t - x0) / (x1 - x0)) * pw);
      g.x0 = x0;
      g.x1 = x1;
      const ts = STEPS.find((s) => (x1 - x0) / s <= pw / 70) || 864e5;
      for (let t = 0; t <= x1 - x0; t += ts) xt(X(x1 - t), t ? "−" + (t < 6e4 ? t / 1e3 + " s" : t < 36e5 ? t / 6e4 + " min" : t / 36e5 + " h") : "now");
      const gap = n ? X(d.x[0]) - L : 0, since = n ? "no samples before " + hms(d.x[0]) : "";
      if (gap > CW * since.length + 16) el("text", { class: "gap", x: L + gap / 2, y: T + ph / 2 }, svg, since);
      d.y.forEach((s, k) => {
        let p = "", first = null, last = null;
        for (let i = 0; i < n; i++) {
          if (d.x[i] < x0 || s[i] == null) continue;
          const xy = X(d.x[i]).toFixed(1) + " " + Y(s[i]).toFixed(1);
          p += (p ? "L" : "M") + xy;
          if (first == null) first = X(d.x[i]);
          last = X(d.x[i]);
        }
        if (!p) return;
        if (o.area && !k) el("path", { class: "area", d: p + "L" + last + " " + Y(lo) + "L" + first + " " + Y(lo) + "Z" }, svg);
        el("path", { class: "line k" + k, d: p }, svg);
      });
      hover();
    }

    // hover shows the crosshair and the tooltip at the pointer's x (px; null hides them).
    function hover() {
      if (!g) return;
      const old = svg.querySelector(".cross");
      if (old) old.remove();
      if (px == null || !g.n) { tip.hidden = true; return; }
      let i = 0, cx;
      if (bar) {
        i = Math.min(Math.max(Math.floor((px - g.L) / g.bw), 0), g.n - 1);
        cx = g.L + (i + 0.5) * g.bw;
      } else {
        const t = g.x0 + ((px - g.L) / g.pw) * (g.x1 - g.x0);
        for (let j = 1; j < g.n; j++) if (Math.abs(d.x[j] - t) < Math.abs(d.x[i] - t)) i = j;
        cx = g.X(d.x[i]);
      }
      const c = el("g", { class: "cross" }, svg);
      el("line", { x1: cx, x2: cx, y1: g.T, y2: g.T + g.ph }, c);
      if (!bar) d.y.forEach((s, k) => s[i] != null && el("circle", { class: "k" + k, cx: cx, cy: g.Y(s[i]), r: 3 }, c));
      const b = document.createElement("b");
      b.textContent = d.t ? d.t[i] : hms(d.x[i]);
      tip.replaceChildren(b);
      d.y.forEach((s, k) => {
        const div = document.createElement("div");
        div.textContent = (o.names ? o.names[k] + ": " : "") + (s[i] == null ? "–" : u.v(s[i]));
        tip.append(div);
      });
      tip.hidden = false;
      const tw = tip.offsetWidth;
      tip.style.left = Math.max(0, cx + 12 + tw > g.W ? cx - 12 - tw : cx + 12) + "px";
      tip.style.top = g.T + "px";
    }

    const at = (e) => { px = e.clientX - svg.getBoundingClientRect().left; hover(); };
    svg.addEventListener("pointermove", at);
    svg.addEventListener("pointerdown", at);
    // A finger lifted leaves the value shown; a mouse leaving hides it.
    svg.addEventListener("pointerleave", (e) => { if (e.pointerType !== "touch") { px = null; hover(); } });
    new ResizeObserver(draw).observe(box);
    return { set: (data) => { d = data; draw(); }, units };
  };
})();
