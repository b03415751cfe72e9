// The dashboard's charts, drawn by the bundled Chart.js from the JSON the page embeds:
// amounts are integers of cents (shown in KSH), rates are percentages as strings.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ttl-chart-data").textContent);
  if (!window.Chart || !data.revenue_cents) { return; }
  var ksh = function (cents) { return Number(cents) / 100; };
  var tick = { callback: function (v) { return Number(v).toLocaleString("en-KE"); } };
  var draw = function (id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { new Chart(canvas, config); }
  };
  var opts = function (extra) {
    var o = { animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: tick } } };
    return Object.assign(o, extra || {});
  };
  draw("chart-revenue", { type: "bar", options: opts(),
    data: { labels: data.revenue_cents.labels.map(function (d) { return d.slice(5); }),
      datasets: [{ label: "Revenue (KSH)", data: data.revenue_cents.values.map(ksh), backgroundColor: "#2f6fde" }] } });
  draw("chart-achievement", { type: "line",
    options: opts({ scales: { y: { beginAtZero: true, max: 100 } } }),
    data: { labels: data.achievement_percent.labels.map(function (d) { return d.slice(5); }),
      datasets: [{ label: "At target (%)", data: data.achievement_percent.values.map(Number), borderColor: "#16a34a", backgroundColor: "#16a34a" }] } });
  draw("chart-hourly", { type: "bar", options: opts(),
    data: { labels: data.hourly_cents.labels,
      datasets: [{ label: "Collections (KSH)", data: data.hourly_cents.values.map(ksh), backgroundColor: "#9333ea" }] } });
  var top = data.top_drivers_cents, bottom = data.bottom_drivers_cents;
  draw("chart-drivers", { type: "bar", options: opts({ indexAxis: "y", scales: { x: { beginAtZero: true, ticks: tick } } }),
    data: { labels: top.labels.map(function (l) { return "top " + l; }).concat(bottom.labels.map(function (l) { return "bottom " + l; })),
      datasets: [{ label: "Collections (KSH)", data: top.values.concat(bottom.values).map(ksh),
        backgroundColor: top.values.map(function () { return "#16a34a"; }).concat(bottom.values.map(function () { return "#d97706"; })) }] } });
})();
