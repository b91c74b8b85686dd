// TFL backtest report: draws the embedded plotly figures, sorts the tables, fills the trades
// table and the one-trade price chart. Offline: plotly.js is inlined in the page above this.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("tfl-data").textContent);
  const F = Object.fromEntries(D.trade_fields.map((k, i) => [k, i]));
  const nf = (d) => new Intl.NumberFormat("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  const fmt = (x, d = 2) => (x === null || x === undefined) ? "–" : nf(d).format(x);
  const pad = (n) => String(n).padStart(2, "0");

  // ---- charts
  const drawn = [];
  for (const id of Object.keys(D.figures)) {
    if (id === "trade" && D.trades.length) continue; // drawn by drawTrade below
    const fig = D.figures[id];
    drawn.push(Plotly.newPlot(id, fig.data, fig.layout, D.config));
  }

  // ---- server-rendered tables: click a header to sort by its column
  function sortBy(tbl, j, asc) {
    const body = tbl.tBodies[0];
    const rows = Array.from(body.rows);
    const key = (r) => {
      const c = r.cells[j];
      return c.dataset.v !== undefined ? (c.dataset.v === "" ? -Infinity : parseFloat(c.dataset.v)) : c.textContent;
    };
    rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
    rows.forEach((r) => body.appendChild(r));
  }
  document.querySelectorAll("table.sortable").forEach((tbl) => {
    let last = -1, asc = true;
    Array.from(tbl.tHead.rows[0].cells).forEach((th, j) => {
      th.title = "click to sort";
      th.addEventListener("click", () => { asc = last === j ? !asc : th.classList.contains("txt"); last = j; sortBy(tbl, j, asc); });
    });
  });

  // ---- one trade's price chart
  const pick = document.getElementById("trade-pick");
  const caption = document.getElementById("trade-caption");
  // Session bars: D.sessions[key] = [date, minutes, unit, base, offset, bars]; D.session_data
  // is base64 of little-endian signed integers of D.session_width bytes, from `offset` each
  // bar's open, high, low, close in units of `unit` paise, each as a difference from the value
  // before it (`base` before the first).
  const delta = (() => {
    const raw = atob(D.session_data || "");
    const bytes = new Uint8Array(raw.length);
    for (let k = 0; k < raw.length; k++) bytes[k] = raw.charCodeAt(k);
    const view = new DataView(bytes.buffer);
    return D.session_width === 2 ? (i) => view.getInt16(2 * i, true) : (i) => view.getInt32(4 * i, true);
  })();
  function unpack(p) {
    const date = p[0], m = p[1], unit = p[2], off = p[4], n = p[5];
    let v = p[3];
    const x = [], cols = [[], [], [], []];
    for (let k = 0; k < n; k++) {
      const mm = typeof m === "number" ? m + 15 * k : m[k];
      x.push(`${date} ${pad(Math.floor(mm / 60))}:${pad(mm % 60)}`);
      for (let j = 0; j < 4; j++) { v += delta(off + 4 * k + j); cols[j].push(v * unit / 100); }
    }
    return { x, open: cols[0], high: cols[1], low: cols[2], close: cols[3] };
  }
  function drawTrade(i) {
    const t = D.trades[i];
    const tpl = D.figures.trade;
    const data = JSON.parse(JSON.stringify(tpl.data));
    const layout = JSON.parse(JSON.stringify(tpl.layout));
    const p = D.sessions[t[F.session]];
    const b = p ? unpack(p) : { x: [], open: [], high: [], low: [], close: [] };
    Object.assign(data[0], b);
    const ends = b.x.length ? [b.x[0], b.x[b.x.length - 1]] : [t[F.entry], t[F.exit]];
    data[1].x = [t[F.entry]]; data[1].y = [t[F.entry_price]];
    data[2].x = [t[F.exit]]; data[2].y = [t[F.exit_price]];
    data[3].x = ends; data[3].y = [t[F.initial_stop], t[F.initial_stop]];
    const shown = [...b.low, ...b.high, t[F.entry_price], t[F.exit_price], t[F.initial_stop]];
    let lo = Math.min(...shown), hi = Math.max(...shown);
    const span = Math.max(hi - lo, 1e-6), target = t[F.target];
    let note = "";
    if (target >= lo - 2 * span && target <= hi + 2 * span) {
      data[4].x = ends; data[4].y = [target, target];
      lo = Math.min(lo, target); hi = Math.max(hi, target);
    } else {
      data[4].x = []; data[4].y = [];
      note = ` · target ₹${fmt(target)} is far off the chart`;
    }
    const padY = (hi - lo) * 0.06 || 1;
    layout.yaxis.range = [lo - padY, hi + padY];
    const done = Plotly.react("trade", data, layout, D.config);
    done.then(() => { document.getElementById("trade").dataset.trade = String(i); });
    caption.textContent = `${t[F.symbol]} ${t[F.side]} ${fmt(t[F.qty], 0)} shares · entry ${t[F.entry]} at ₹${fmt(t[F.entry_price])}` +
      ` · exit ${t[F.exit]} at ₹${fmt(t[F.exit_price])} (${t[F.reason]}) · net ₹${fmt(t[F.pnl])} (${fmt(t[F.r], 2)} R)` +
      ` · initial stop ₹${fmt(t[F.initial_stop])}` + note + (p ? "" : " · no bars for this session in the data");
    if (pick.value !== String(i)) pick.value = String(i);
    return done;
  }
  if (D.trades.length) {
    const frag = document.createDocumentFragment();
    D.trades.forEach((t, i) => {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = `${t[F.entry]} ${t[F.symbol]} ${t[F.side]} ${fmt(t[F.pnl])}`;
      frag.appendChild(o);
    });
    pick.appendChild(frag);
    pick.addEventListener("change", () => drawTrade(parseInt(pick.value, 10)));
    drawn.push(drawTrade(0));
  } else {
    pick.disabled = true;
    caption.textContent = "no trades in this run";
  }

  // ---- trades table (rendered here: it can hold thousands of rows)
  const LIMIT = 500;
  const DP = [0, 0, 0, 2, 0, 0, 2, 0, 2, 2];
  const SIGNED = [8, 9];
  const ttab = document.getElementById("trades");
  const tbody = ttab.tBodies[0];
  const filt = document.getElementById("tfilter");
  const count = document.getElementById("tcount");
  let key = 2, asc = true;
  const order = D.trades.map((_, i) => i);
  function drawTable() {
    const q = filt.value.trim().toLowerCase();
    const rows = order.filter((i) => !q || D.trades[i].slice(0, 10).join(" ").toLowerCase().includes(q));
    rows.sort((a, b) => {
      const x = D.trades[a][key], y = D.trades[b][key];
      return (x < y ? -1 : x > y ? 1 : a - b) * (asc ? 1 : -1);
    });
    const frag = document.createDocumentFragment();
    rows.slice(0, LIMIT).forEach((i) => {
      const tr = document.createElement("tr");
      tr.dataset.trade = String(i);
      D.trades[i].slice(0, 10).forEach((v, j) => {
        const td = document.createElement("td");
        if (typeof v === "number") {
          td.textContent = fmt(v, DP[j]);
          td.className = "num" + (SIGNED.includes(j) ? (v > 0 ? " pos" : v < 0 ? " neg" : "") : "");
        } else { td.textContent = v; td.className = "txt"; }
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    tbody.replaceChildren(frag);
    count.textContent = `${rows.length} trades` + (rows.length > LIMIT ? ` (first ${LIMIT} shown)` : "");
  }
  Array.from(ttab.tHead.rows[0].cells).forEach((th, j) => {
    th.title = "click to sort";
    th.addEventListener("click", () => { asc = key === j ? !asc : th.classList.contains("txt"); key = j; drawTable(); });
  });
  tbody.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (!tr || tr.dataset.trade === undefined) return;
    drawTrade(parseInt(tr.dataset.trade, 10));
    document.getElementById("trade").scrollIntoView({ block: "center" });
  });
  filt.addEventListener("input", drawTable);
  drawTable();
  Promise.all(drawn).then(() => { document.body.dataset.ready = "1"; });
})();
