// tickrelay dashboard: renders the views the server pushes over /ws. Prices arrive as exact decimal
// text and are shown as such; the chart parses them for drawing only.
"use strict";

let socket = null;
let selected = localStorage.getItem("tickrelay.selected") || "";
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
  selected = id;
  localStorage.setItem("tickrelay.selected", id);
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ select: id }));
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
  if (!selected && view.instruments.length) select(view.instruments[0].id);
  const rows = view.instruments.map((i) => {
    const cls = i.status === "ok" ? "okc" : i.status === "stale" ? "warn" : "bad";
    const tr = row([
      cell(i.venue), cell(i.symbol, "l"), cell(i.last), cell(i.last_size), cell(i.bid), cell(i.ask),
      cell(i.spread), cell(i.status, "l " + cls), cell(i.age_s),
    ]);
    tr.dataset.id = i.id;
    if (i.id === selected) tr.className = "sel";
    tr.onclick = () => select(i.id);
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
  const width = $("chart").clientWidth || 600;
  if (!chart || chartFor !== (depth ? depth.id : "")) {
    if (chart) chart.destroy();
    chartFor = depth ? depth.id : "";
    chart = new uPlot({
      width, height: 240,
      series: [
        {},
        { label: "trade", stroke: "#58a6ff", width: 0, points: { show: true, size: 4, fill: "#58a6ff" } },
        { label: "mid", stroke: "#d29922", width: 1.5, spanGaps: true },
      ],
      axes: [{ stroke: "#7d8a99" }, { stroke: "#7d8a99", size: 80 }],
      legend: { show: true },
    }, data, $("chart"));
  } else {
    chart.setData(data);
  }
}

function renderAlerts(view) {
  const rows = view.alerts.map((a) => row([
    cell(new Date(a.ts_ms).toISOString().slice(11, 23), "l dim"),
    cell(a.severity, "l " + (a.severity === "critical" ? "bad" : a.severity === "warning" ? "warn" : "okc")),
    cell(a.text, "l"),
  ]));
  fill($("alerts").tBodies[0], rows.length ? rows : [row([cell("no alerts", "l dim")])]);
}

function renderSignals(view) {
  $("open-count").textContent = `(${view.open_signals.length} open)`;
  const rows = view.signals.map((s) => row([
    cell(s.state, "l " + (s.state === "close" ? "dim" : "okc")), cell(s.buy, "l"), cell(s.buy_price),
    cell(s.sell, "l"), cell(s.sell_price), cell(s.size), cell(s.edge_bp),
  ]));
  fill($("signals").tBodies[0], rows);
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
  socket.onmessage = (event) => render(JSON.parse(event.data));
  socket.onclose = () => {
    setPill(conn, false, "", "reconnecting");
    setTimeout(connect, 1000);
  };
}

connect();
