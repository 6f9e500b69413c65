// bcfleet dashboard: the only script besides the vendored Chart.js. It
// shows times in the viewer's time zone and draws the rollout charts from
// the numbers the server put in each canvas's data-chart. No inline
// script anywhere (Content-Security-Policy: script-src 'self').
"use strict";

(function () {
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });

  function localTimes() {
    document.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.title = el.textContent;
        el.textContent = fmt.format(d);
      }
    });
  }

  // Colours per state: distinguishable without red-green alone, with
  // contrast against white.
  var colours = {
    installed: "#1b7f3b",
    staged: "#3f6fb5",
    awaiting: "#b06d00",
    failed: "#c62828",
    rolled_back: "#7b1fa2",
    silent: "#6b6b6b",
    pending: "#c9ccd1"
  };

  function charts() {
    if (typeof Chart === "undefined") {
      return;
    }
    var short = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var d = JSON.parse(canvas.getAttribute("data-chart"));
      if (d.kind === "history") {
        // One release's devices by state over time: stacked areas.
        canvas.parentElement.style.height = "300px";
        new Chart(canvas, {
          type: "line",
          data: {
            labels: d.labels.map(function (t) { return short.format(new Date(t)); }),
            datasets: d.series.map(function (s) {
              var c = colours[s.key] || "#999";
              return { label: s.label, data: s.data, borderColor: c, backgroundColor: c, fill: true, pointRadius: 0, borderWidth: 1, stack: "devices" };
            })
          },
          options: {
            animation: false,
            responsive: true,
            maintainAspectRatio: false,
            interaction: { mode: "index", intersect: false },
            plugins: {
              title: { display: true, text: d.title + ": devices by state over time" },
              legend: { position: "bottom" }
            },
            scales: {
              x: { title: { display: true, text: "time (yours)" } },
              y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "devices" } }
            }
          }
        });
        return;
      }
      var rows = Math.max(d.labels.length, 1);
      canvas.parentElement.style.height = (80 + 42 * rows) + "px";
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: d.labels,
          datasets: d.series.map(function (s) {
            return { label: s.label, data: s.data, backgroundColor: colours[s.key] || "#999", stack: "devices" };
          })
        },
        options: {
          indexAxis: "y",
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: {
            title: { display: true, text: d.title + ": devices by state" },
            legend: { position: "bottom" }
          },
          scales: {
            x: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "devices" } },
            y: { stacked: true, title: { display: true, text: "release" } }
          }
        }
      });
    });
  }

  function start() {
    localTimes();
    charts();
    document.documentElement.setAttribute("data-ready", "1");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
