// renkei app: draws the charts whose data the page carries in <script type="application/json">.
(function () {
  "use strict";
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function draw() {
    if (typeof Chart === "undefined") { return; }
    var funnel = data("funnel-data");
    if (funnel) {
      new Chart(document.getElementById("funnel"), {
        type: "bar",
        data: { labels: funnel.labels, datasets: [{ data: funnel.values, backgroundColor: "#2458c6" }] },
        options: { indexAxis: "y", animation: false, plugins: { legend: { display: false } } }
      });
    }
    var created = data("created-data");
    if (created) {
      new Chart(document.getElementById("created"), {
        type: "line",
        data: { labels: created.labels, datasets: [{ data: created.values, borderColor: "#2458c6", fill: false, tension: 0.2 }] },
        options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
