// TFL research report: draws the embedded plotly figures and makes the tables sortable.
// Offline: plotly.js is inlined in the page above this.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("tfl-data").textContent);
  const drawn = Object.keys(D.figures).map((id) => {
    const fig = D.figures[id];
    return Plotly.newPlot(id, fig.data, fig.layout, D.config);
  });
  document.querySelectorAll("table.sortable").forEach((tbl) => {
    let last = -1, asc = true;
    Array.from(tbl.tHead.rows[0].cells).forEach((th, j) => {
      th.title = "click to sort";
      th.addEventListener("click", () => {
        asc = last === j ? !asc : th.classList.contains("txt");
        last = j;
        const key = (r) => {
          const c = r.cells[j];
          return c.dataset.v !== undefined ? (c.dataset.v === "" ? -Infinity : parseFloat(c.dataset.v)) : c.textContent;
        };
        const rows = Array.from(tbl.tBodies[0].rows);
        rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
        rows.forEach((r) => tbl.tBodies[0].appendChild(r));
      });
    });
  });
  Promise.all(drawn).then(() => { document.body.dataset.ready = "1"; });
})();
