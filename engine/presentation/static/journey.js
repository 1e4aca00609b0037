// Draws a journey's graph from the page's own data: the layout (each step's depth and column)
// is computed by the server; each step shows the leads there now and how many reached it.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("journey-data").textContent);
  var el = document.getElementById("chart-journey");
  var g = data.graph;
  var at = {};
  g.nodes.forEach(function (n) { at[n.id] = n; });
  var symbols = { send: "square", task: "square", update: "square", wait: "circle", wait_for: "circle",
                  branch: "diamond", split: "diamond", exit: "x" };
  function caption(n) {
    var c = n.counts, lines = ["<b>" + n.id + "</b>", n.label.replace(/</g, "&lt;"),
      c.active + " here · " + c.reached + " reached"];
    if (n.kind === "send") { lines.push(c.sent + " sent · " + c.skipped + " skipped · " + c.clicked + " clicked"); }
    return lines.join("<br>");
  }
  var nodes = {
    type: "scatter", mode: "markers+text", hoverinfo: "text", textposition: "middle right",
    x: g.nodes.map(function (n) { return n.x; }), y: g.nodes.map(function (n) { return n.y; }),
    text: g.nodes.map(caption), hovertext: g.nodes.map(caption),
    customdata: g.nodes.map(function (n) { return n.id; }),
    marker: { size: g.nodes.map(function (n) { return 14 + Math.min(16, Math.sqrt(n.counts.active) * 2); }),
              symbol: g.nodes.map(function (n) { return symbols[n.kind] || "circle"; }),
              color: g.nodes.map(function (n) { return n.counts.active ? "#0b6e4f" : "#9bb8ad"; }),
              line: { width: 1, color: "#fff" } },
    textfont: { size: 11 }
  };
  var arrows = [];
  g.edges.forEach(function (e) {
    var a = at[e.from], b = e.to ? at[e.to] : { x: a.x, y: a.y - 0.55 };
    arrows.push({ x: b.x, y: b.y, ax: a.x, ay: a.y, xref: "x", yref: "y", axref: "x", ayref: "y",
                  showarrow: true, arrowhead: 2, arrowsize: 1, arrowwidth: 1.2, standoff: 9, startstandoff: 9,
                  arrowcolor: e.to ? "#778" : "#c08", text: "" });
    if (e.label || !e.to) {
      arrows.push({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2, xref: "x", yref: "y", showarrow: false,
                    text: (e.label || "") + (e.to ? "" : " → leaves"), font: { size: 10, color: "#555" },
                    bgcolor: "rgba(255,255,255,.85)" });
    }
  });
  var small = window.matchMedia("(max-width: 700px)").matches;
  el.style.height = Math.max(420, g.depth * 95) + "px";
  Plotly.newPlot(el, [nodes], {
    margin: { l: 10, r: 10, t: 10, b: 10 }, showlegend: false, annotations: arrows, hovermode: "closest",
    xaxis: { visible: false, range: [-0.1, g.width + (small ? 0.6 : 1.2)] },
    yaxis: { visible: false, range: [-g.depth + 0.3, 0.6] },
    paper_bgcolor: "#fff", plot_bgcolor: "#fff", font: { size: 12 }
  }, { responsive: true, displaylogo: false, displayModeBar: false });
  el.setAttribute("data-steps", String(g.nodes.length));
}());
