// TFL backtest report: renders the embedded JSON into SVG charts and tables.
// Self-contained: no network, no libraries.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("tfl-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const tip = document.getElementById("tip");
  const fmt = (x, d = 2) => (x === null || x === undefined) ? "–" :
    Number(x).toLocaleString("en-IN", { minimumFractionDigits: d, maximumFractionDigits: d });

  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function showTip(ev, html) {
    tip.innerHTML = html; tip.style.display = "block";
    tip.style.left = (ev.pageX + 12) + "px"; tip.style.top = (ev.pageY + 12) + "px";
  }
  function hideTip() { tip.style.display = "none"; }

  // ---- line chart with hover crosshair (equity, drawdown)
  function lineChart(host, xs, ys, opts) {
    const W = host.clientWidth || 900, H = opts.height || 260, P = { l: 70, r: 10, t: 10, b: 24 };
    const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` }, host);
    if (!ys.length) { el("text", { x: 20, y: 30 }, svg).textContent = "no data"; return; }
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (opts.zeroTop) hi = Math.max(hi, 0);
    if (hi === lo) { hi += 1; lo -= 1; }
    const X = i => P.l + (W - P.l - P.r) * (xs.length > 1 ? i / (xs.length - 1) : 0.5);
    const Y = v => P.t + (H - P.t - P.b) * (1 - (v - lo) / (hi - lo));
    for (let k = 0; k <= 4; k++) {
      const v = lo + (hi - lo) * k / 4;
      el("line", { x1: P.l, x2: W - P.r, y1: Y(v), y2: Y(v), class: "grid" }, svg);
      el("text", { x: P.l - 6, y: Y(v) + 4, "text-anchor": "end", class: "axis" }, svg).textContent = fmt(v, opts.dp ?? 0);
    }
    const step = Math.max(1, Math.floor(xs.length / 6));
    for (let i = 0; i < xs.length; i += step)
      el("text", { x: X(i), y: H - 6, "text-anchor": "middle", class: "axis" }, svg).textContent = xs[i];
    let d = "";
    ys.forEach((v, i) => { d += (i ? "L" : "M") + X(i).toFixed(1) + "," + Y(v).toFixed(1); });
    if (opts.fill) el("path", { d: d + `L${X(ys.length - 1)},${Y(Math.max(lo, Math.min(hi, 0)))}L${X(0)},${Y(Math.max(lo, Math.min(hi, 0)))}Z`, class: opts.fill }, svg);
    el("path", { d, class: opts.cls || "line" }, svg);
    const cross = el("line", { y1: P.t, y2: H - P.b, class: "cross", visibility: "hidden" }, svg);
    svg.addEventListener("mousemove", ev => {
      const r = svg.getBoundingClientRect();
      const i = Math.max(0, Math.min(xs.length - 1, Math.round((ev.clientX - r.left - P.l) / (W - P.l - P.r) * (xs.length - 1))));
      cross.setAttribute("x1", X(i)); cross.setAttribute("x2", X(i)); cross.setAttribute("visibility", "visible");
      showTip(ev, `${xs[i]}<br><b>${fmt(ys[i], opts.dp ?? 2)}</b>${opts.unit || ""}`);
    });
    svg.addEventListener("mouseleave", () => { cross.setAttribute("visibility", "hidden"); hideTip(); });
  }

  // ---- vertical bar chart (R histogram, exit reasons)
  function barChart(host, labels, values, opts) {
    const W = host.clientWidth || 600, H = opts.height || 220, P = { l: 50, r: 10, t: 10, b: 40 };
    const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` }, host);
    const hi = Math.max(1, ...values);
    const bw = (W - P.l - P.r) / Math.max(1, values.length);
    for (let k = 0; k <= 4; k++) {
      const v = hi * k / 4, y = P.t + (H - P.t - P.b) * (1 - k / 4);
      el("line", { x1: P.l, x2: W - P.r, y1: y, y2: y, class: "grid" }, svg);
      el("text", { x: P.l - 6, y: y + 4, "text-anchor": "end", class: "axis" }, svg).textContent = Math.round(v);
    }
    values.forEach((v, i) => {
      const h = (H - P.t - P.b) * v / hi;
      const r = el("rect", { x: P.l + i * bw + 1, y: H - P.b - h, width: Math.max(1, bw - 2), height: h,
        class: opts.colour ? opts.colour(labels[i]) : "bar" }, svg);
      r.addEventListener("mousemove", ev => showTip(ev, `${labels[i]}: <b>${v}</b>`));
      r.addEventListener("mouseleave", hideTip);
      if (values.length <= 12 || i % Math.ceil(values.length / 12) === 0)
        el("text", { x: P.l + i * bw + bw / 2, y: H - P.b + 14, "text-anchor": "middle", class: "axis" }, svg).textContent = labels[i];
    });
  }

  // ---- sortable table
  function table(host, cols, rows, opts) {
    const t = document.createElement("table");
    const thead = t.createTHead().insertRow();
    const body = t.createTBody();
    let key = opts.sort ?? 0, asc = opts.asc ?? true;
    cols.forEach((c, j) => {
      const th = document.createElement("th"); th.textContent = c; th.title = "click to sort";
      th.onclick = () => { asc = key === j ? !asc : false; key = j; draw(); };
      thead.appendChild(th);
    });
    function draw() {
      const filt = opts.filter ? opts.filter() : "";
      const rs = rows.filter(r => !filt || r.join(" ").toLowerCase().includes(filt));
      rs.sort((a, b) => (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0) * (asc ? 1 : -1));
      body.innerHTML = "";
      rs.slice(0, opts.limit || rs.length).forEach(r => {
        const tr = body.insertRow();
        r.forEach((v, j) => {
          const td = tr.insertCell();
          td.textContent = typeof v === "number" ? fmt(v, (opts.dp || [])[j] ?? 2) : v;
          if (typeof v === "number") td.className = "num" + (opts.signed && opts.signed.includes(j) ? (v > 0 ? " pos" : v < 0 ? " neg" : "") : "");
        });
      });
      if (opts.count) opts.count.textContent = `${rs.length} rows` + (opts.limit && rs.length > opts.limit ? ` (first ${opts.limit} shown)` : "");
    }
    host.appendChild(t); draw();
    return draw;
  }

  // ---- the page
  const S = D.summary;
  const cards = [
    ["Net P&L", fmt(S.net_pnl)], ["Final equity", fmt(S.final_equity)], ["CAGR", fmt(S.cagr_pct) + "%"],
    ["Max drawdown", fmt(S.max_drawdown_pct) + "%"], ["Sharpe", fmt(S.sharpe)], ["Sortino", fmt(S.sortino)],
    ["Trades", S.trades], ["Win rate", fmt(S.win_rate_pct) + "%"], ["Profit factor", fmt(S.profit_factor)],
    ["Avg R", fmt(S.avg_r, 3)], ["Expectancy", fmt(S.expectancy)], ["SQN", fmt(S.sqn)],
    ["Exposure", fmt(S.exposure_pct) + "%"], ["Charges", fmt(S.total_charges)],
  ];
  const cardHost = document.getElementById("cards");
  cards.forEach(([k, v]) => {
    const c = document.createElement("div"); c.className = "card";
    c.innerHTML = `<div class="k">${k}</div><div class="v">${v}</div>`; cardHost.appendChild(c);
  });
  if (S.net_pnl < 0) cardHost.children[0].classList.add("neg"); else cardHost.children[0].classList.add("pos");

  const days = D.daily.map(r => r[0]);
  lineChart(document.getElementById("equity"), days, D.daily.map(r => r[1]), { height: 280, unit: " ₹" });
  lineChart(document.getElementById("drawdown"), days, D.daily.map(r => r[2]), { height: 160, cls: "line dd", fill: "ddfill", unit: "%", zeroTop: true, dp: 1 });

  // monthly heat map
  const mh = document.getElementById("monthly");
  const mt = document.createElement("table"); mt.className = "heat";
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const hr = mt.createTHead().insertRow();
  ["Year", ...MONTHS, "Year"].forEach(h => { const th = document.createElement("th"); th.textContent = h; hr.appendChild(th); });
  const mb = mt.createTBody();
  Object.keys(D.monthly).sort().forEach(y => {
    const tr = mb.insertRow(); tr.insertCell().textContent = y;
    for (let m = 1; m <= 13; m++) {
      const v = m <= 12 ? D.monthly[y][m] : D.yearly[y];
      const td = tr.insertCell();
      if (v === undefined || v === null) { td.textContent = ""; continue; }
      td.textContent = v.toFixed(1);
      const a = Math.min(1, Math.abs(v) / 10);
      td.style.background = v >= 0 ? `rgba(22,163,74,${0.15 + 0.75 * a})` : `rgba(220,38,38,${0.15 + 0.75 * a})`;
      td.title = `${y} ${m <= 12 ? MONTHS[m - 1] : "total"}: ${v.toFixed(2)}%`;
    }
  });
  mh.appendChild(mt);

  // R distribution
  const bins = [], counts = [];
  for (let b = -3; b < 10; b += 0.5) { bins.push(b.toFixed(1)); counts.push(0); }
  D.r.forEach(r => { const i = Math.max(0, Math.min(bins.length - 1, Math.floor((r + 3) / 0.5))); counts[i]++; });
  barChart(document.getElementById("rdist"), bins, counts, { colour: l => parseFloat(l) < 0 ? "bar neg" : "bar pos" });
  const reasons = Object.keys(D.exit_reasons);
  barChart(document.getElementById("reasons"), reasons, reasons.map(k => D.exit_reasons[k]), {});

  // bias strip
  const bh = document.getElementById("bias");
  const W = bh.clientWidth || 900, n = D.bias.length, cw = Math.max(1, W / Math.max(1, n));
  const bsvg = el("svg", { width: W, height: 34, viewBox: `0 0 ${W} 34` }, bh);
  D.bias.forEach((b, i) => {
    const r = el("rect", { x: i * cw, y: 0, width: Math.max(1, cw), height: 26, class: "b-" + b[1] }, bsvg);
    r.addEventListener("mousemove", ev => showTip(ev,
      `${b[0]} <b>${b[1]}</b><br>breadth above ${fmt(b[2], 1)}% / below ${fmt(b[3], 1)}%<br>index ${fmt(b[4])} · VIX ${fmt(b[5])}<br>${b[6]}`));
    r.addEventListener("mouseleave", hideTip);
  });

  table(document.getElementById("symbols"), ["Symbol", "Trades", "Win %", "Net P&L", "Avg R"],
    D.symbols.map(s => [s.symbol, s.trades, s.win_rate_pct, s.net_pnl, s.avg_r]),
    { sort: 3, asc: false, dp: [0, 0, 1, 2, 3], signed: [3, 4] });

  const filt = document.getElementById("tfilter");
  const redraw = table(document.getElementById("trades"),
    ["Symbol", "Side", "Entry", "Entry ₹", "Qty", "Exit", "Exit ₹", "Reason", "P&L", "R"],
    D.trades, { sort: 2, asc: true, dp: [0, 0, 0, 2, 0, 0, 2, 0, 2, 2], signed: [8, 9], limit: 500,
      filter: () => filt.value.trim().toLowerCase(), count: document.getElementById("tcount") });
  filt.addEventListener("input", redraw);
})();
