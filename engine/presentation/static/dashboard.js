// Draws the dashboard's charts from the page's own data (the same documents as its tables).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var small = window.matchMedia("(max-width: 700px)").matches;
  var config = { responsive: true, displaylogo: false, displayModeBar: small ? false : "hover",
                 modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var base = { margin: { l: 48, r: 12, t: 8, b: 40 }, font: { size: 12 }, legend: { orientation: "h", y: -0.2 },
               paper_bgcolor: "#fff", plot_bgcolor: "#fff" };

  function layout(extra) { return Object.assign({}, base, extra || {}); }
  function draw(id, traces, extra) {
    var el = document.getElementById(id);
    if (!el) { return; }
    if (!traces.length || traces.every(function (t) { return !(t.x || t.values || []).length; })) {
      el.textContent = "Nothing yet.";
      el.className += " empty";
      return;
    }
    Plotly.newPlot(el, traces, layout(extra), config);
  }

  var total = data.attribution.total;
  var stages = ["leads", "contacted", "engaged", "applied", "approved", "funded"];
  draw("chart-funnel", [{
    type: "funnel", y: ["captured", "contacted", "engaged", "applied", "approved", "funded"],
    x: stages.map(function (s) { return total[s]; }), texttemplate: "%{value:,}<br>%{percentInitial:.0%}",
    marker: { color: "#0b6e4f" }
  }], { margin: { l: 80, r: 12, t: 8, b: 20 } });

  var days = data.daily.days;
  function series(measure, name, axis) {
    return { type: "scatter", mode: "lines", name: name, yaxis: axis || "y",
             x: days.map(function (d) { return d.day; }), y: days.map(function (d) { return d[measure]; }) };
  }
  draw("chart-daily", days.length ? [series("captured", "captured"), series("applied", "applied"),
    series("funded", "funded"), series("sent", "messages sent", "y2")] : [],
    { xaxis: Object.assign({ type: "date", tickformat: "%b %d" }, days.length <= 14 ? { dtick: 86400000 } : {}),
      yaxis: { title: { text: "leads" } },
      yaxis2: { title: { text: "messages" }, overlaying: "y", side: "right" },
      margin: { l: 48, r: 56, t: 8, b: 40 } });  // room for the messages axis on the right

  var channels = data.costs.by_channel.filter(function (c) { return c.cost_per_funded !== null; });
  draw("chart-channels", [{
    type: "bar", x: channels.map(function (c) { return c.channel.replace(/_/g, " "); }),
    y: channels.map(function (c) { return c.cost_per_funded; }), marker: { color: "#2f5d8a" },
    hovertemplate: "%{x}: %{y:,.0f} per funded loan<extra></extra>"
  }], { yaxis: { title: { text: data.currency } } });

  var comparisons = [];
  data.experiments.splits.forEach(function (s) {
    s.comparisons.forEach(function (c) { comparisons.push({ label: s.journey_id + " / " + c.arm + " → " + c.goal, c: c }); });
  });
  var withCi = comparisons.filter(function (x) { return x.c.absolute_ci95; });
  draw("chart-lift", [{
    type: "scatter", mode: "markers", orientation: "h",
    y: withCi.map(function (x) { return x.label; }), x: withCi.map(function (x) { return x.c.absolute_lift * 100; }),
    error_x: { type: "data", symmetric: false,
      array: withCi.map(function (x) { return (x.c.absolute_ci95[1] - x.c.absolute_lift) * 100; }),
      arrayminus: withCi.map(function (x) { return (x.c.absolute_lift - x.c.absolute_ci95[0]) * 100; }) },
    marker: { size: 9, color: withCi.map(function (x) { return x.c.significant ? "#0b6e4f" : "#8a96a3"; }) },
    hovertemplate: "%{y}: %{x:+.1f} points<extra></extra>"
  }], { margin: { l: 220, r: 12, t: 8, b: 40 }, xaxis: { zeroline: true, title: { text: "percentage points" } },
        yaxis: { automargin: true } });

  // The twelve messages sent most often that carry links anyone followed.
  var clicked = data.engagement.steps.filter(function (r) { return r.sent > 0 && (r.clicked + r.scanner_clicked) > 0; })
    .sort(function (a, b) { return b.sent - a.sent; }).slice(0, 12);
  draw("chart-clicks", [
    { type: "bar", orientation: "h", name: "people", y: clicked.map(function (r) { return r.journey_id + ": " + r.step; }),
      x: clicked.map(function (r) { return r.click_through_rate * 100; }), marker: { color: "#2f5d8a" },
      hovertemplate: "%{y}: %{x:.1f}% clicked<extra></extra>" },
    { type: "bar", orientation: "h", name: "scanners", y: clicked.map(function (r) { return r.journey_id + ": " + r.step; }),
      x: clicked.map(function (r) { return r.sent ? r.scanner_clicked / r.sent * 100 : 0; }), marker: { color: "#c8cdd3" },
      hovertemplate: "%{y}: %{x:.1f}% followed by scanners<extra></extra>" }
  ], { margin: { l: 200, r: 12, t: 36, b: 44 }, yaxis: { automargin: true, autorange: "reversed" }, barmode: "group",
       xaxis: { title: { text: "% of messages sent" } }, legend: { orientation: "h", x: 0, y: 1.12 } });

  var journeys = data.flows.journeys;
  // The four journeys most leads entered (all of them when the page is filtered to one).
  var chosen = data.scope.journey ? journeys : journeys.filter(function (j) { return j.entered > 0; })
    .sort(function (a, b) { return b.entered - a.entered || (a.journey_id < b.journey_id ? -1 : 1); }).slice(0, 4);
  var bars = chosen.reduce(function (n, j) { return n + j.steps.length; }, 0);
  var flow = document.getElementById("chart-flow");
  if (flow && bars > 12) { flow.style.height = Math.min(900, 120 + 16 * bars) + "px"; }  // a readable row per step
  draw("chart-flow", chosen.map(function (j) {
    return { type: "bar", orientation: "h", name: j.journey_id, y: j.steps.map(function (s) { return j.journey_id + ": " + s.step; }),
             x: j.steps.map(function (s) { return s.reached; }) };
  }), { margin: { l: 200, r: 12, t: 8, b: 40 }, yaxis: { automargin: true, autorange: "reversed" }, barmode: "group" });

  var scoreTraces = [];
  Object.keys(data.scores.kinds).forEach(function (kind) {
    var bands = data.scores.kinds[kind];
    scoreTraces.push({ type: "bar", name: kind + " leads", x: bands.map(function (b) { return kind + " " + b.band; }),
                       y: bands.map(function (b) { return b.leads; }) });
    scoreTraces.push({ type: "bar", name: kind + " funded", x: bands.map(function (b) { return kind + " " + b.band; }),
                       y: bands.map(function (b) { return b.funded; }) });
  });
  draw("chart-scores", scoreTraces, { barmode: "group" });

  var months = {};
  data.referrals.by_programme_month.forEach(function (r) {
    var m = months[r.month] || (months[r.month] = { referrals: 0, funded: 0 });
    m.referrals += r.referrals; m.funded += r.funded;
  });
  var keys = Object.keys(months).sort();
  draw("chart-referrals", keys.length ? [
    { type: "bar", name: "referrals", x: keys, y: keys.map(function (k) { return months[k].referrals; }) },
    { type: "bar", name: "funded", x: keys, y: keys.map(function (k) { return months[k].funded; }) }
  ] : [], { barmode: "group", xaxis: { type: "category" } });
})();
