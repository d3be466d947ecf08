// Draw each panel of /stats/ with the Plotly served by kjdms; the numbers come from the page's JSON block.
"use strict";
const CHARTS = JSON.parse(document.getElementById("chart-data").textContent);
const FONT = {family: '"WenQuanYi Zen Hei", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif', size: 12};
document.querySelectorAll(".chart").forEach(function (box) {
  const chart = CHARTS[box.dataset.key];
  box.style.height = box.dataset.height + "px";
  const traces = chart.columns.map(function (name, c) {
    const values = chart.values.map(function (row) { return row[c]; });
    if (chart.kind === "line") return {type: "scatter", mode: "lines+markers", name: name, x: chart.rows, y: values};
    return {type: "bar", orientation: "h", name: name, y: chart.rows, x: values};
  });
  const layout = {font: FONT, barmode: chart.kind === "stacked" ? "stack" : "group", showlegend: chart.columns.length > 1,
                  margin: {l: 220, r: 20, t: 10, b: 40}, yaxis: {automargin: true, autorange: chart.kind === "line" ? true : "reversed"},
                  legend: {orientation: "h"}};
  Plotly.newPlot(box, traces, layout, {displayModeBar: false, responsive: true, staticPlot: false})
    .then(function () { box.dataset.drawn = "1"; });
});
