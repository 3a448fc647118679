// routeopt studio: the page. Vanilla JS; every text from a study is set with textContent
// (never innerHTML), so nothing uploaded is ever interpreted as markup or code.
"use strict";

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const COST_PARTS = [
  ["opening_cost", "Opening", "#4e79a7"],
  ["vehicle_fixed_cost", "Vehicles (fixed)", "#f28e2b"],
  ["travel_cost", "Travel (distance, time)", "#59a14f"],
  ["penalty_cost", "Penalties (unserved)", "#b07aa1"],
];
// key, heading, kind (text | num | pct), digits
const COLUMNS = [
  ["rank", "Rank", "num", 0],
  ["layout", "Layout", "text"],
  ["depots", "Depots", "text"],
  ["total_cost", "Total cost", "num", 0],
  ["cost_per_day", "Cost per day", "num", 0],
  ["opening_cost", "Opening", "num", 0],
  ["vehicle_fixed_cost", "Vehicles fixed", "num", 0],
  ["travel_cost", "Travel", "num", 0],
  ["penalty_cost", "Penalties", "num", 0],
  ["vehicles_used", "Vehicles", "num", 0],
  ["distance_km", "km", "num", 1],
  ["driver_hours", "Driver hours", "num", 1],
  ["orders_late", "Late orders", "num", 0],
  ["orders_unserved", "Unserved orders", "num", 0],
  ["mean_depot_distance_km", "Mean km to depot", "num", 2],
  ["load_utilisation", "Load use", "pct", 0],
  ["cost_per_order", "Cost per order", "num", 2],
  ["status", "Status", "text"],
];
const COMPARE_KPIS = [
  ["total_cost", "Total cost", 0, -1],
  ["cost_per_day", "Cost per day", 0, -1],
  ["opening_cost", "Opening", 0, -1],
  ["vehicle_fixed_cost", "Vehicles fixed", 0, -1],
  ["travel_cost", "Travel", 0, -1],
  ["penalty_cost", "Penalties", 0, -1],
  ["vehicles_used", "Vehicles", 0, -1],
  ["distance_km", "km", 1, -1],
  ["driver_hours", "Driver hours", 1, -1],
  ["orders_late", "Late orders", 0, -1],
  ["orders_unserved", "Unserved orders", 0, -1],
  ["mean_depot_distance_km", "Mean km to depot", 2, -1],
  ["load_utilisation", "Load use (%)", 1, 1],
  ["cost_per_order", "Cost per order", 2, -1],
];

const state = {
  config: null, studies: [], current: null, currentData: null, sort: { key: "rank", dir: 1 },
  map: null, mapLayers: [], shownStudy: null, pollTimer: null,
};

// ---- helpers -------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}
function fmt(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function $(id) { return document.getElementById(id); }

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (opts.body !== undefined) {
    opts.method = opts.method || "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.body);
  }
  const response = await fetch(path, opts);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const message = data && data.error ? data.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return data;
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function rowProblems(row) {
  return row.problems && row.problems.length ? row.problems : [];
}

// ---- starting studies ----------------------------------------------------------------------
async function uploadStudy(event) {
  event.preventDefault();
  const message = $("upload-message");
  clear(message);
  const files = Array.from($("upload-files").files);
  if (!files.length) {
    message.append(el("p", { class: "error", text: "Choose the study's files first." }));
    return;
  }
  const total = files.reduce((n, f) => n + f.size, 0);
  if (state.config && total > state.config.max_upload_bytes) {
    message.append(el("p", { class: "error", text: `The files are larger than the studio accepts (${fmt(state.config.max_upload_bytes / 1048576, 0)} MB).` }));
    return;
  }
  const payload = { name: $("upload-name").value, files: [] };
  for (const f of files) payload.files.push({ name: f.name, content: base64(await f.arrayBuffer()) });
  await submit("/api/studies", payload, message);
}

async function submit(path, payload, message) {
  try {
    const study = await api(path, { body: payload });
    await refreshList();
    openStudy(study.id);
  } catch (err) {
    clear(message);
    message.append(el("p", { class: "error", text: `Not started: ${err.message}` }));
  }
}

// ---- the list of studies -------------------------------------------------------------------
function statusText(s) {
  if (s.status === "running") {
    const total = s.total ? ` of ${s.total}${s.search ? " + search" : ""}` : (s.search ? " (search)" : "");
    return `running: ${s.routed}${total} layouts routed`;
  }
  if (s.status === "invalid") return `invalid input (${s.violations.length} problems)`;
  return s.status;
}

async function refreshList() {
  const data = await api("/api/studies");
  state.studies = data.studies;
  const body = document.querySelector("#study-list tbody");
  clear(body);
  const newest = state.studies.slice().reverse();
  $("study-list-empty").hidden = newest.length > 0;
  for (const s of newest) {
    const best = s.best ? `${s.best.label}: ${fmt(s.best.total_cost, 0)}${s.best.feasible ? "" : " ⚠"}` : "—";
    const actions = el("td", {},
      el("button", { type: "button", "data-open": s.id, text: "Open", "aria-label": `Open ${s.name}`, onclick: () => openStudy(s.id) }));
    if (s.status === "queued" || s.status === "running") {
      actions.append(" ", el("button", { type: "button", text: "Cancel", "aria-label": `Cancel ${s.name}`, onclick: () => cancelStudy(s.id) }));
    } else {
      actions.append(" ", el("button", { type: "button", text: "Run again", "aria-label": `Run ${s.name} again`, onclick: () => submit(`/api/studies/${s.id}/rerun`, {}, $("upload-message")) }));
    }
    body.append(el("tr", { "data-study": s.id },
      el("th", { scope: "row", text: s.name }), el("td", { text: statusText(s) }), el("td", { text: best }), actions));
  }
  fillCompareSelects();
}

async function cancelStudy(id) {
  try { await api(`/api/studies/${id}/cancel`, { body: {} }); } catch (err) { /* shown by the next poll */ }
  await refreshList();
  if (state.current === id) poll();
}

// ---- one study -----------------------------------------------------------------------------
function openStudy(id) {
  state.current = id;
  state.currentData = null;
  state.shownStudy = null;
  state.sort = { key: "rank", dir: 1 };
  $("study").hidden = false;
  $("results").hidden = true;
  poll();
  $("study-h").focus();
}

async function poll() {
  clearTimeout(state.pollTimer);
  const id = state.current;
  if (!id) return;
  let data;
  try { data = await api(`/api/studies/${id}`); } catch (err) {
    $("study-error").hidden = false; $("study-error").textContent = err.message; return;
  }
  if (id !== state.current) return;
  showStudy(data);
  if (data.status === "queued" || data.status === "running") {
    state.pollTimer = setTimeout(poll, 600);
  } else {
    refreshList();
  }
}

function showStudy(s) {
  $("study-h").textContent = s.name;
  $("study-source").textContent = `From ${s.source}` + (s.inputs ? ` · ${s.inputs.orders} orders on ${s.inputs.days.length} day(s), ${s.inputs.depots.length} candidate depots` : "");
  const bar = $("progress-bar");
  const text = $("progress-text");
  const running = s.status === "queued" || s.status === "running";
  $("study-progress").hidden = s.status === "invalid";
  $("cancel").hidden = !running;
  $("cancel").onclick = () => cancelStudy(s.id);
  const best = s.best ? ` Best so far: ${s.best.label} (${fmt(s.best.total_cost, 0)}${s.best.feasible ? "" : ", ⚠ breaks a depot capacity or leaves orders unserved"}).` : "";
  if (s.total && !(s.search && s.routed >= s.total)) { bar.max = s.total; bar.value = Math.min(s.routed, s.total); }
  else if (running) { bar.removeAttribute("value"); }  // a search: how many layouts it routes is not known
  else { bar.max = 1; bar.value = 1; }
  if (s.status === "done" || s.status === "cancelled") { bar.max = Math.max(s.routed, 1); bar.value = s.routed; }
  const total = s.total ? ` of ${s.total}` : "";
  const search = s.search ? " (and a search for better layouts)" : "";
  const words = {
    queued: "Waiting for the studies before it.",
    running: `Routing: ${s.routed}${total} layouts routed${search}.${best}`,
    done: `Done: ${s.routed} layouts routed.${best}`,
    cancelled: `Cancelled after ${s.routed} layouts; the layouts routed are shown.${best}`,
    failed: "Failed.",
    interrupted: "Interrupted: the studio stopped while this study ran. Run it again.",
    invalid: "Invalid input: nothing ran.",
  };
  text.textContent = words[s.status] || s.status;
  const vio = $("violations");
  vio.hidden = s.status !== "invalid";
  const list = $("violation-list");
  clear(list);
  for (const [where, what] of s.violations) list.append(el("li", {}, el("strong", { text: where }), `: ${what}`));
  $("study-error").hidden = !s.error;
  $("study-error").textContent = s.error ? `The study failed: ${s.error}` : "";
  if (s.results && state.shownStudy !== s.id + s.status) {
    state.shownStudy = s.id + s.status;
    state.currentData = s;
    showResults(s);
  }
}

function showResults(s) {
  $("results").hidden = false;
  const rows = s.results.rows.map((r, k) => Object.assign({}, r, {
    rank: k + 1,
    file: s.results.layouts[k].file,
    status: rowProblems(r).length ? "⚠ " + rowProblems(r).join("; ") : "OK",
  }));
  state.rows = rows;
  renderTable();
  const flagged = rows.filter((r) => rowProblems(r).length).length;
  $("table-note").textContent = (flagged ? `${flagged} layout(s) marked ⚠ break a depot's capacity or leave orders unserved. ` : "") +
    "Costs are totals over the study's days. Sort by any column with its heading's button.";
  renderMap(s, rows);
  renderChart(rows);
  renderDownloads(s, rows);
  renderVariant(s);
}

// ---- the comparison table (sortable) -------------------------------------------------------
function renderTable() {
  const table = $("comparison");
  clear(table);
  table.append(el("caption", { text: "Routed layouts, best first (feasible layouts first, then by total cost)" }));
  const head = el("tr");
  for (const [key, label, kind] of COLUMNS) {
    const sorted = state.sort.key === key;
    const th = el("th", { scope: "col", class: kind === "text" ? null : "num", "aria-sort": sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : "none" });
    const arrow = el("span", { class: "arrow", "aria-hidden": "true", text: sorted ? (state.sort.dir > 0 ? "▲" : "▼") : "" });
    th.append(el("button", { type: "button", "data-sort": key, onclick: () => sortBy(key) }, label, " ", arrow));
    head.append(th);
  }
  table.append(el("thead", {}, head));
  const { key, dir } = state.sort;
  const kind = COLUMNS.find((c) => c[0] === key)[2];
  const rows = state.rows.slice().sort((a, b) => {
    const x = a[key], y = b[key];
    if (kind === "text") return dir * String(x).localeCompare(String(y));
    return dir * ((x === null ? Infinity : x) - (y === null ? Infinity : y));
  });
  const body = el("tbody");
  for (const r of rows) {
    const problems = rowProblems(r);
    const tr = el("tr", { class: problems.length ? "flagged" : (r.rank === 1 ? "best" : null), "data-layout": r.layout });
    for (const [k, , kind2, digits] of COLUMNS) {
      let cell;
      if (k === "layout") cell = el("th", { scope: "row", text: r.layout });
      else if (k === "status") cell = el("td", { class: problems.length ? "flag" : "ok", text: r.status });
      else if (kind2 === "pct") cell = el("td", { class: "num", text: `${fmt(100 * r[k], digits)} %` });
      else if (kind2 === "num") cell = el("td", { class: "num", text: fmt(r[k], digits) });
      else cell = el("td", { text: r[k] });
      tr.append(cell);
    }
    body.append(tr);
  }
  table.append(body);
}

function sortBy(key) {
  if (state.sort.key === key) state.sort.dir = -state.sort.dir;
  else state.sort = { key, dir: 1 };
  renderTable();
  const button = document.querySelector(`#comparison th button[data-sort="${key}"]`);
  if (button) button.focus();
}

// ---- the map -------------------------------------------------------------------------------
function overloaded(props) {
  const cap = props.capacity || {};
  return (props.load_per_day || []).some((day) => Object.entries(day).some(([t, v]) => cap[t] !== undefined && cap[t] > 0 && v > cap[t]));
}

function labelIcon(text, bad) {
  const node = el("span", { class: bad ? "map-label bad" : "map-label", text });
  return L.divIcon({ html: node, className: "", iconSize: null, iconAnchor: [-10, 8] });
}

async function renderMap(s, rows) {
  if (typeof L === "undefined") return;
  if (!state.map) {
    state.map = L.map("map", { zoomSnap: 0.25, attributionControl: true });
    if (state.config && state.config.tiles) {
      L.tileLayer(state.config.tiles, { attribution: state.config.tiles_attribution, maxZoom: 19 }).addTo(state.map);
    }
  }
  for (const layer of state.mapLayers) state.map.removeLayer(layer);
  state.mapLayers = [];
  const bounds = [];
  const collections = await Promise.all(rows.map((r) => api(`/api/studies/${s.id}/files/layouts/${r.file}`)));
  // one colour per depot of the study, the same in every layout
  const colour = depotColours(s);
  collections.forEach((fc, k) => {
    const row = rows[k];
    const group = L.layerGroup();
    const features = fc.features;
    for (const f of features.filter((x) => x.properties.kind === "assignment")) {
      group.addLayer(L.polyline(f.geometry.coordinates.map(([x, y]) => [y, x]), { color: "#888", weight: 1, dashArray: "3 4", opacity: 0.7, interactive: false }));
    }
    for (const f of features.filter((x) => x.properties.kind === "route")) {
      const p = f.properties;
      group.addLayer(L.polyline(f.geometry.coordinates.map(([x, y]) => [y, x]), { color: colour[p.depot] || "#333", weight: 4, opacity: 0.85 })
        .bindTooltip(`${p.vehicle_label} from ${p.depot} (${p.day}): ${p.visits} stops, ${fmt(p.travel_distance_m / 1000, 1)} km`));
    }
    for (const f of features.filter((x) => x.properties.kind === "order")) {
      const p = f.properties;
      const [x, y] = f.geometry.coordinates;
      bounds.push([y, x]);
      if (!p.depot) {
        group.addLayer(L.marker([y, x], { icon: L.divIcon({ html: el("span", { text: "✕" }), className: "map-unserved", iconSize: [16, 16] }), title: `${p.order}: unserved` }));
        group.addLayer(L.marker([y, x], { icon: labelIcon(`${p.order} unserved`, true), interactive: false }));
      } else {
        group.addLayer(L.circleMarker([y, x], { radius: 4, color: colour[p.depot] || "#000", weight: 1, fillOpacity: 0.9 })
          .bindTooltip(`${p.order} (${p.day}): served from ${p.depot}`));
      }
    }
    for (const f of features.filter((x) => x.properties.kind === "depot")) {
      const p = f.properties;
      const [x, y] = f.geometry.coordinates;
      bounds.push([y, x]);
      const over = p.open && overloaded(p);
      if (p.open) {
        if (over) group.addLayer(L.circleMarker([y, x], { radius: 15, color: "#a4000f", weight: 3, dashArray: "4 3", fill: false }));
        group.addLayer(L.circleMarker([y, x], { radius: 9, color: "#222", weight: 2, fillColor: colour[p.depot] || "#333", fillOpacity: 1 })
          .bindTooltip(`depot ${p.depot}: open, opening cost ${fmt(p.opening_cost, 0)}${over ? ", over capacity" : ""}`));
        group.addLayer(L.marker([y, x], { icon: labelIcon(over ? `${p.depot} ⚠ over capacity` : p.depot, over), interactive: false }));
      } else {
        group.addLayer(L.circleMarker([y, x], { radius: 6, color: "#666", weight: 2, fillColor: "#fff", fillOpacity: 0.8 })
          .bindTooltip(`depot ${p.depot}: closed in this layout`));
      }
    }
    state.mapLayers.push(group);
    if (k === 0) group.addTo(state.map);
  });
  state.map.invalidateSize();
  if (bounds.length) state.map.fitBounds(bounds, { paddingTopLeft: [30, 30], paddingBottomRight: [170, 30] });
  renderLegend(rows, colour);
  $("map-credit").textContent = s.results.attribution ? `Routes along the roads. ${s.results.attribution}.` : "Routes drawn straight between stops (no road network).";
}

function depotColours(s) {
  const colour = {};
  const depots = s.inputs ? s.inputs.depots.map((d) => d.label) : [];
  depots.forEach((d, n) => { colour[d] = PALETTE[n % PALETTE.length]; });
  return colour;
}

function renderLegend(rows, colour) {
  // the layer list and the legend sit beside the map, never over it
  const legend = $("map-legend");
  clear(legend);
  const layers = el("fieldset", { id: "map-layers" }, el("legend", { text: "Layouts on the map" }));
  rows.forEach((row, k) => {
    const id = `layer-${k}`;
    const problems = rowProblems(row);
    const box = el("input", { type: "checkbox", id, "data-layer": k, checked: k === 0 });
    box.addEventListener("change", () => {
      if (box.checked) state.mapLayers[k].addTo(state.map); else state.map.removeLayer(state.mapLayers[k]);
    });
    layers.append(el("div", {}, box, " ", el("label", { for: id, text: `${k + 1}. ${row.layout}: ${fmt(row.total_cost, 0)}${problems.length ? " ⚠ " + problems.join("; ") : ""}` })));
  });
  legend.append(layers);
  legend.append(el("strong", { text: "Legend" }));
  const items = el("ul");
  for (const [d, c] of Object.entries(colour)) {
    items.append(el("li", {}, el("span", { class: "swatch round", "data-colour": c }), `depot ${d} (open), its routes and orders`));
  }
  items.append(el("li", {}, el("span", { class: "swatch round", "data-colour": "#ffffff" }), "closed candidate depot"));
  items.append(el("li", {}, "- - - order to its depot"));
  items.append(el("li", {}, "✕ unserved order (labelled)"));
  items.append(el("li", {}, "⚠ over capacity: depot beyond its capacity (labelled, dashed ring)"));
  legend.append(items, el("p", { class: "muted", text: "Each depot keeps its colour in every layout." }));
  for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
}

// ---- the cost chart (inline SVG) -----------------------------------------------------------
function renderChart(rows) {
  const box = $("chart");
  clear(box);
  const left = 210, right = 230, barH = 22, gap = 10, legendH = 46, top = legendH + 12, axisH = 28;
  const width = 980, plotW = width - left - right;
  const height = top + rows.length * (barH + gap) + axisH;
  const max = Math.max(1, ...rows.map((r) => COST_PARTS.reduce((t, [k]) => t + Math.max(r[k], 0), 0)));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": "chart-title chart-desc" });
  chart.append(svg("title", { id: "chart-title" }, "Cost per layout, stacked by cost type"));
  chart.append(svg("desc", { id: "chart-desc" }, rows.map((r) => `${r.layout}: total ${fmt(r.total_cost, 0)}${rowProblems(r).length ? " (" + rowProblems(r).join("; ") + ")" : ""}`).join(". ")));
  // the legend: its own band above the plot, never over the bars
  let lx = left;
  for (const [, name, colour] of COST_PARTS) {
    chart.append(svg("rect", { x: lx, y: 6, width: 14, height: 14, fill: colour }));
    const t = svg("text", { x: lx + 19, y: 18 }, name);
    chart.append(t);
    lx += 24 + name.length * 7.2;
  }
  chart.append(svg("text", { x: left, y: 40, fill: "#a4000f" }, "⚠ and a dashed outline: the layout breaks a depot's capacity or leaves orders unserved"));
  // axis ticks
  const step = niceStep(max / 5);
  for (let v = 0; v <= max * 1.0001; v += step) {
    const x = left + (v / max) * plotW;
    chart.append(svg("line", { x1: x, x2: x, y1: top - 4, y2: height - axisH + 4, stroke: "#ddd" }));
    chart.append(svg("text", { x, y: height - 8, "text-anchor": "middle", fill: "#444" }, fmt(v, 0)));
  }
  rows.forEach((r, k) => {
    const y = top + k * (barH + gap);
    const problems = rowProblems(r);
    const name = r.layout.length > 30 ? r.layout.slice(0, 29) + "…" : r.layout;
    const label = svg("text", { x: left - 8, y: y + barH / 2 + 4, "text-anchor": "end" }, `${k + 1}. ${name}`);
    label.append(svg("title", {}, r.layout));
    chart.append(label);
    let x = left;
    const g = svg("g", { "data-layout": r.layout });
    for (const [key, partName, colour] of COST_PARTS) {
      const w = (Math.max(r[key], 0) / max) * plotW;
      if (w <= 0) continue;
      const rect = svg("rect", { x, y, width: w, height: barH, fill: colour });
      rect.append(svg("title", {}, `${r.layout}: ${partName} ${fmt(r[key], 0)}`));
      g.append(rect);
      x += w;
    }
    if (problems.length) {
      g.append(svg("rect", { x: left, y: y - 2, width: Math.max(x - left, 2), height: barH + 4, fill: "none", stroke: "#a4000f", "stroke-width": 2, "stroke-dasharray": "5 3" }));
    }
    chart.append(g);
    const note = `${fmt(r.total_cost, 0)}${problems.length ? " ⚠ " + problems.join("; ") : ""}`;
    chart.append(svg("text", { x: x + 6, y: y + barH / 2 + 4, fill: problems.length ? "#a4000f" : "#222", "font-weight": problems.length ? 600 : 400 }, note));
  });
  box.append(chart);
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-9))));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

// ---- downloads and what-if -----------------------------------------------------------------
function renderDownloads(s, rows) {
  const list = $("downloads");
  clear(list);
  const base = `/api/studies/${s.id}/files/`;
  list.append(el("li", {}, el("a", { href: base + "comparison.csv", download: "", text: "Comparison table (CSV)" })));
  list.append(el("li", {}, el("a", { href: base + "response.json", download: "", text: "Full response (JSON, routes included)" })));
  for (const r of rows) {
    list.append(el("li", {}, el("a", { href: base + "layouts/" + r.file, download: "", text: `GeoJSON: ${r.layout}` })));
  }
}

function renderVariant(s) {
  const box = $("variant-depots");
  clear(box);
  $("variant-message").textContent = "";
  if (!s.inputs) return;
  for (const d of s.inputs.depots) {
    const id = `close-${d.label}`.replace(/[^A-Za-z0-9_-]/g, "_");
    box.append(el("span", { class: "check" }, el("input", { type: "checkbox", id, value: d.label }), " ", el("label", { for: id, text: d.label }), "  "));
  }
  const link = $("variant-compare");
  clear(link);
  const parent = s.parent && state.studies.find((x) => x.id === s.parent);
  if (parent) {
    link.append(el("button", { type: "button", id: "compare-parent", text: `Compare with “${parent.name}”`, onclick: () => compareWith(parent.id, s.id) }));
  }
}

async function runVariant(event) {
  event.preventDefault();
  const closed = Array.from(document.querySelectorAll("#variant-depots input:checked")).map((x) => x.value);
  if (!closed.length) { $("variant-message").textContent = "Check the depots to close first."; return; }
  await submit(`/api/studies/${state.current}/variant`, { close: closed }, $("variant-message"));
}

// ---- comparing two studies -----------------------------------------------------------------
function fillCompareSelects() {
  const done = state.studies.filter((s) => s.status === "done" || s.status === "cancelled").slice().reverse();
  for (const id of ["compare-a", "compare-b"]) {
    const select = $(id);
    const keep = select.value;
    clear(select);
    select.append(el("option", { value: "", text: "— choose a study —" }));
    for (const s of done) select.append(el("option", { value: s.id, text: s.name }));
    if (done.some((s) => s.id === keep)) select.value = keep;
  }
}

function compareWith(a, b) {
  $("compare-a").value = a;
  $("compare-b").value = b;
  renderCompare();
  $("compare-h").scrollIntoView();
}

async function renderCompare() {
  const out = $("compare-out");
  const a = $("compare-a").value, b = $("compare-b").value;
  clear(out);
  if (!a || !b) return;
  const [A, B] = await Promise.all([api(`/api/studies/${a}`), api(`/api/studies/${b}`)]);
  if (!A.results || !B.results || !A.results.rows.length || !B.results.rows.length) {
    out.append(el("p", { text: "Both studies need routed layouts." }));
    return;
  }
  const ra = A.results.rows[0], rb = B.results.rows[0];
  out.append(el("p", {}, "Best layout of A: ", el("strong", { text: `${ra.layout} (${ra.depots})` }),
    "; of B: ", el("strong", { text: `${rb.layout} (${rb.depots})` }), "."));
  const depA = new Set(ra.depots.split(" ")), depB = new Set(rb.depots.split(" "));
  const onlyA = [...depA].filter((d) => !depB.has(d)), onlyB = [...depB].filter((d) => !depA.has(d));
  const diffs = el("ul", { class: "diffs" });
  diffs.append(el("li", { text: onlyA.length || onlyB.length ? `Depots open only in A: ${onlyA.join(", ") || "none"}; only in B: ${onlyB.join(", ") || "none"}.` : "Both open the same depots." }));
  if (A.inputs && B.inputs) {
    const inA = new Set(A.inputs.depots.map((d) => d.label)), inB = new Set(B.inputs.depots.map((d) => d.label));
    const gone = [...inA].filter((d) => !inB.has(d)), added = [...inB].filter((d) => !inA.has(d));
    if (gone.length) diffs.append(el("li", { text: `Candidate depots of A missing from B (closed): ${gone.join(", ")}.` }));
    if (added.length) diffs.append(el("li", { text: `Candidate depots only in B: ${added.join(", ")}.` }));
    if (A.inputs.orders !== B.inputs.orders) diffs.append(el("li", { text: `Orders: ${A.inputs.orders} in A, ${B.inputs.orders} in B.` }));
  }
  for (const [label, row] of [["A", ra], ["B", rb]]) {
    if (rowProblems(row).length) diffs.append(el("li", { class: "flag", text: `⚠ ${label}'s best layout: ${rowProblems(row).join("; ")}.` }));
  }
  out.append(diffs);
  const table = el("table", { id: "compare-table" });
  table.append(el("caption", { text: `Best layouts compared: B − A (A: ${A.name}; B: ${B.name})` }));
  table.append(el("thead", {}, el("tr", {},
    el("th", { scope: "col", text: "KPI" }), el("th", { scope: "col", class: "num", text: "A" }),
    el("th", { scope: "col", class: "num", text: "B" }), el("th", { scope: "col", class: "num", text: "B − A" }),
    el("th", { scope: "col", text: "Change" }))));
  const body = el("tbody");
  for (const [key, label, digits, good] of COMPARE_KPIS) {
    const scale = key === "load_utilisation" ? 100 : 1;
    const x = ra[key] === null ? null : ra[key] * scale, y = rb[key] === null ? null : rb[key] * scale;
    const delta = x === null || y === null ? null : y - x;
    const same = delta === null || Math.abs(delta) < Math.pow(10, -digits) / 2;
    let change = "same", cls = null;
    if (!same) {
      const better = delta * good > 0;
      const pct = x ? ` (${fmt(100 * Math.abs(delta) / Math.abs(x), 1)} %)` : "";
      change = `${delta > 0 ? "▲ higher" : "▼ lower"}${pct}, ${better ? "better" : "worse"}`;
      cls = better ? "delta-better" : "delta-worse";
    }
    body.append(el("tr", { "data-kpi": key },
      el("th", { scope: "row", text: label }),
      el("td", { class: "num", text: fmt(x, digits) }),
      el("td", { class: same ? "num" : "num changed", text: fmt(y, digits) }),
      el("td", { class: "num", text: delta === null ? "—" : same ? fmt(0, digits) : (delta > 0 ? "+" : "") + fmt(delta, digits) }),
      el("td", { class: cls, text: change })));
  }
  table.append(body);
  out.append(table);
  await renderCompareMap(out, A, B);
  // the layouts both studies routed (the same depots): how each one's cost moved
  const key = (r) => r.depots.split(" ").filter(Boolean).sort().join(" ");
  const inB = new Map(B.results.rows.map((r) => [key(r), r]));
  const both = A.results.rows.filter((r) => inB.has(key(r)));
  if (!both.length) {
    out.append(el("p", { text: "No layout with the same depots was routed in both studies." }));
    return;
  }
  const same = el("table", { id: "compare-layouts" });
  same.append(el("caption", { text: "Layouts routed in both studies (same depots): total cost" }));
  same.append(el("thead", {}, el("tr", {},
    el("th", { scope: "col", text: "Depots" }), el("th", { scope: "col", class: "num", text: "A" }),
    el("th", { scope: "col", class: "num", text: "B" }), el("th", { scope: "col", class: "num", text: "B − A" }),
    el("th", { scope: "col", text: "Problems in B" }))));
  const rowsBoth = el("tbody");
  for (const ra2 of both) {
    const rb2 = inB.get(key(ra2));
    const delta = rb2.total_cost - ra2.total_cost;
    rowsBoth.append(el("tr", {},
      el("th", { scope: "row", text: key(ra2) }),
      el("td", { class: "num", text: fmt(ra2.total_cost, 0) }),
      el("td", { class: Math.abs(delta) >= 0.5 ? "num changed" : "num", text: fmt(rb2.total_cost, 0) }),
      el("td", { class: delta < -0.5 ? "num delta-better" : delta > 0.5 ? "num delta-worse" : "num", text: (delta > 0 ? "+" : "") + fmt(delta, 0) }),
      el("td", { class: rowProblems(rb2).length ? "flag" : null, text: rowProblems(rb2).length ? "⚠ " + rowProblems(rb2).join("; ") : "none" })));
  }
  same.append(rowsBoth);
  out.append(same);
}

// the two best layouts on one map: A solid blue, B dashed red; depots labelled by where they are open
async function renderCompareMap(out, A, B) {
  if (typeof L === "undefined") return;
  const [fa, fb] = await Promise.all([
    api(`/api/studies/${A.id}/files/layouts/${A.results.layouts[0].file}`),
    api(`/api/studies/${B.id}/files/layouts/${B.results.layouts[0].file}`),
  ]);
  const box = el("div", { id: "compare-map", role: "region", "aria-label": "Map of both best layouts" });
  out.append(el("h3", { text: "Both best layouts on one map" }), box,
    el("p", { class: "muted", text: "A: solid blue routes; B: dashed red routes. Depots are labelled by the study that opens them (A, B or both)." }));
  if (state.compareMap) state.compareMap.remove();
  const map = L.map(box, { zoomSnap: 0.25 });
  state.compareMap = map;
  if (state.config && state.config.tiles) {
    L.tileLayer(state.config.tiles, { attribution: state.config.tiles_attribution, maxZoom: 19 }).addTo(map);
  }
  const bounds = [];
  const opened = {};
  for (const [name, fc, colour, dash] of [["A", fa, "#1f77b4", null], ["B", fb, "#d62728", "8 6"]]) {
    for (const f of fc.features) {
      const p = f.properties;
      if (p.kind === "route") {
        L.polyline(f.geometry.coordinates.map(([x, y]) => [y, x]), { color: colour, weight: 4, opacity: 0.8, dashArray: dash }).addTo(map)
          .bindTooltip(`${name}: ${p.vehicle_label} from ${p.depot}`);
      } else if (p.kind === "depot") {
        const [x, y] = f.geometry.coordinates;
        bounds.push([y, x]);
        opened[p.depot] = opened[p.depot] || { at: [y, x], in: [] };
        if (p.open) opened[p.depot].in.push(name);
      } else if (p.kind === "order") {
        const [x, y] = f.geometry.coordinates;
        bounds.push([y, x]);
      }
    }
  }
  for (const [depot, info] of Object.entries(opened)) {
    const where = info.in.length === 2 ? "open in A and B" : info.in.length ? `open in ${info.in[0]} only` : "closed in both";
    const changed = info.in.length === 1;
    L.circleMarker(info.at, { radius: info.in.length ? 9 : 6, color: "#222", weight: 2, fillColor: info.in.length ? (changed ? "#ffd23f" : "#666") : "#fff", fillOpacity: 1 }).addTo(map);
    L.marker(info.at, { icon: labelIcon(`${depot}: ${where}`, changed), interactive: false }).addTo(map);
  }
  map.invalidateSize();
  if (bounds.length) map.fitBounds(bounds, { paddingTopLeft: [30, 30], paddingBottomRight: [170, 30] });
}

// ---- start ---------------------------------------------------------------------------------
// With the server's API keys, the page signs in first (the key becomes an HttpOnly session
// cookie; the page never keeps it).
function signIn() {
  return new Promise((resolve) => {
    $("signin").hidden = false;
    for (const id of ["start", "studies"]) $(id).hidden = true;
    $("signin-key").focus();
    $("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = $("signin-message");
      try {
        const answer = await api("/api/session", { body: { key: $("signin-key").value } });
        $("signin-key").value = "";
        $("signin").hidden = true;
        for (const id of ["start", "studies"]) $(id).hidden = false;
        resolve(answer.tenant);
      } catch (err) {
        message.textContent = `Not signed in: ${err.message}`;
      }
    });
  });
}

async function start() {
  state.config = await api("/api/config");
  if (state.config.keys) {
    const tenant = state.config.tenant || (await signIn());
    $("tenant").textContent = `Tenant: ${tenant} (its own studies only)`;
    $("tenant").hidden = false;
  }
  $("upload-form").addEventListener("submit", uploadStudy);
  $("example-run").addEventListener("click", () => submit("/api/studies/example", {}, $("upload-message")));
  $("variant-form").addEventListener("submit", runVariant);
  $("compare-a").addEventListener("change", renderCompare);
  $("compare-b").addEventListener("change", renderCompare);
  await refreshList();
  setInterval(() => { refreshList().catch(() => {}); }, 3000);
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", () => { start().catch((err) => { document.body.dataset.error = err.message; }); });
