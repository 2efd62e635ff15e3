// tickrelay dashboard: renders the views the server pushes over /ws. Prices arrive as exact decimal
// text and are shown as such; the chart parses them for drawing only.
"use strict";

let socket = null;
let picked = localStorage.getItem("tickrelay.selected") || ""; // the instrument someone clicked
let selected = "";
let chart = null;
let chartFor = "";
let lastView = null;

const $ = (id) => document.getElementById(id);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  Object.assign(tr, attrs || {});
  return tr;
}

function setPill(el, ok, okText, badText) {
  el.textContent = ok ? okText : badText;
  el.className = "pill " + (ok ? "up" : "down");
}

function select(id) {
  if (id === selected) return;
  selected = id;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ select: id }));
}

function pick(id) {
  picked = id;
  localStorage.setItem("tickrelay.selected", id);
  select(id);
  if (lastView) render(lastView);
}

function renderVenues(view) {
  const rows = Object.entries(view.venues).map(([venue, v]) => {
    const t = v.by_type;
    const book = (t.l2_snapshot || 0) + (t.l2_delta || 0);
    return row([
      cell(venue), cell(v.rate), cell(v.messages), cell(t.trade || 0), cell(t.quote || 0), cell(book),
      cell(v.gaps, v.gaps ? "bad" : ""), cell(v.invalidations, v.invalidations ? "warn" : ""),
      cell(v.errors, v.errors ? "bad" : ""), cell(v.p50_us), cell(v.p99_us),
    ]);
  });
  fill($("venues").tBodies[0], rows);
}

function renderInstruments(view) {
  // the instrument someone picked while it exists, else the busiest: the price panel is never empty
  const known = view.instruments.some((i) => i.id === picked);
  if (known) select(picked);
  else if (view.busiest) select(view.busiest);
  const rows = view.instruments.map((i) => {
    const cls = i.status === "ok" ? "okc" : i.status === "stale" ? "warn" : "bad";
    const tr = row([
      cell(i.venue), cell(i.symbol, "l"), cell(i.last), cell(i.last_size), cell(i.bid), cell(i.ask),
      cell(i.spread), cell(i.status, "l wrap " + cls), cell(i.age_s),
    ]);
    tr.dataset.id = i.id;
    if (i.id === selected) tr.className = "sel";
    tr.onclick = () => pick(i.id);
    return tr;
  });
  fill($("instruments").tBodies[0], rows);
}

function renderDepth(depth) {
  $("sel-name").textContent = depth ? depth.name : "none selected";
  const bids = depth ? depth.bids : [];
  const asks = depth ? depth.asks : [];
  fill($("bids").tBodies[0], bids.map(([p, s]) => row([cell(s, "l"), cell(p, "okc")])));
  fill($("asks").tBodies[0], asks.map(([p, s]) => row([cell(p, "l bad"), cell(s)])));
  const series = (points) => [points.map((p) => p[0] / 1000), points.map((p) => parseFloat(p[1]))];
  const data = uPlot.join([series(depth ? depth.trades : []), series(depth ? depth.mids : [])]);
  const box = $("chart");
  const width = box.clientWidth || 600;
  const height = Math.max(160, box.clientHeight - 30); // the legend's line below the plot
  if (chart && (chart.width !== width || chart.height !== height)) chart.setSize({ width, height });
  if (!chart || chartFor !== (depth ? depth.id : "")) {
    if (chart) chart.destroy();
    chartFor = depth ? depth.id : "";
    chart = new uPlot({
      width, height,
      series: [
        {},
        { label: "trade", stroke: "#58a6ff", width: 0, points: { show: true, size: 4, fill: "#58a6ff" } },
        { label: "mid", stroke: "#d29922", width: 1.5, spanGaps: true },
      ],
      axes: [{ stroke: "#7d8a99", space: 90 }, { stroke: "#7d8a99", size: 80 }],
      legend: { show: true, live: false }, // the series' names; values would read "--" until hovered
    }, data, $("chart"));
  } else {
    chart.setData(data);
  }
}

function renderAlerts(view) {
  const rows = view.alerts.map((a) => row([
    cell(new Date(a.ts_ms).toISOString().slice(11, 23), "l dim"),
    cell(a.severity, "l " + (a.severity === "critical" ? "bad" : a.severity === "warning" ? "warn" : "okc")),
    cell(a.text, "l wrap"),
  ]));
  fill($("alerts").tBodies[0], rows.length ? rows : [row([cell("no alerts", "l dim")])]);
}

function renderSignals(view) {
  $("open-count").textContent = `(${view.open_signals.length} open)`;
  // the strategy's own word on the pairs it compares ("no cross-venue pair in the data (...)")
  $("strategy-note").textContent = view.strategy;
  const rows = view.signals.map((s) => row([
    cell(s.state, "l " + (s.state === "close" ? "dim" : "okc")), cell(s.buy, "l wrap"), cell(s.buy_price),
    cell(s.sell, "l wrap"), cell(s.sell_price), cell(s.size), cell(s.edge_bp),
  ]));
  const none = view.strategy ? "no signal" : "no signal yet";
  fill($("signals").tBodies[0], rows.length ? rows : [row([cell(none, "l dim")])]);
}

function render(view) {
  lastView = view;
  for (const [name, up] of Object.entries(view.relays)) setPill($("relay-" + name), up, "up", "down");
  $("clock").textContent = new Date(view.now_ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  renderVenues(view);
  renderInstruments(view);
  if (!view.depth || view.depth.id === selected) renderDepth(view.depth);
  renderAlerts(view);
  renderSignals(view);
}

function connect() {
  const conn = $("conn");
  socket = new WebSocket(`ws://${location.host}/ws`);
  socket.onopen = () => {
    setPill(conn, true, "connected", "");
    if (selected) socket.send(JSON.stringify({ select: selected }));
  };
  window.onresize = () => lastView && renderDepth(lastView.depth);
  socket.onmessage = (event) => render(JSON.parse(event.data));
  socket.onclose = () => {
    setPill(conn, false, "", "reconnecting");
    setTimeout(connect, 1000);
  };
}

connect();
