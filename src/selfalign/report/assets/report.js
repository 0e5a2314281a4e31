"use strict";
// The report's core: building blocks, the overview, item lists with search, filters and links.
// Every text from the data goes on screen through text nodes (never innerHTML): model text is
// untrusted. Views (views/*.js) set VIEWS[kind] = function (run, index, host).

const VIEWS = {};
let DATA = null;

function base64Bytes(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text); // Chromium 140+, Firefox 133+, Safari 18.2+
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// A data block: JSON, or for a large report gzipped JSON in base64 (see page.py).
async function readBlock(node) {
  if (node.type === "application/json") return JSON.parse(node.textContent);
  const inflated = new Blob([base64Bytes(node.textContent)]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(inflated).text());
}

// A large page holds the record keys only an item's detail shows in blocks after the script
// (page.py); an item naming one ("more") gets them when it is opened. Each block is inflated once.
const MORE = new Map();

async function loadMore(item) {
  if (!item.more) return;
  if (!MORE.has(item.more)) MORE.set(item.more, documentRead().then(() => readBlock(document.getElementById(item.more))));
  Object.assign(item.record, (await MORE.get(item.more))[item.id]);
}

// The list is drawn while the browser still reads the blocks after the script.
function documentRead() {
  if (document.readyState !== "loading") return Promise.resolve();
  return new Promise((done) => document.addEventListener("DOMContentLoaded", done, { once: true }));
}
const SVGNS = "http://www.w3.org/2000/svg";

// Control characters (a terminal escape, a NUL) shown as their Control Pictures, so they are
// seen rather than acted on or silently dropped; newlines and tabs stay.
function visible(text) {
  return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g,
    (c) => (c === "\u007f" ? "\u2421" : String.fromCharCode(0x2400 + c.charCodeAt(0))));
}

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style" || key === "innerHTML") throw new Error("no " + key + ": CSSOM and text nodes only");
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(visible(child)));
  }
}

function fmt(x, digits = 2) {
  if (x === null || x === undefined) return "n/a";
  if (typeof x !== "number") return String(x);
  return Number.isInteger(x) ? x.toLocaleString("en") : x.toFixed(digits);
}

// An axis label: as few digits as tell the value, whatever its size (a learning rate of 2e-5
// reads "2e-5", not "0.000"); zero is "0".
function axisLabel(x) {
  if (x === 0) return "0";
  const size = Math.abs(x);
  if (size < 1e-2 || size >= 1e6) return x.toExponential(1).replace(/\.0e/, "e").replace("e+", "e");
  return String(Number(x.toPrecision(3)));
}

function duration(seconds) {
  if (!seconds && seconds !== 0) return "n/a";
  if (seconds < 90) return seconds.toFixed(1) + " s";
  if (seconds < 5400) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(2) + " h";
}

function textBlock(label, text) {
  return h("div", {}, h("div", { class: "label" }, label), h("div", { class: "text" }, text ?? ""));
}

function badge(text, kind) {
  return h("span", { class: "badge " + (kind || "") }, text);
}

function kvTable(obj) {
  return h("table", {}, Object.entries(obj || {}).map(([k, v]) =>
    h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v)))));
}

function lastUser(input) {
  const messages = (input && input.messages) || [];
  return messages.length ? messages[messages.length - 1].content : "";
}

// -- differences, word by word (longest common subsequence) --------------------------------

function diffWords(a, b) {
  const x = a.split(/(\s+)/), y = b.split(/(\s+)/);
  const n = x.length, m = y.length;
  if (n * m > 4e6) return null; // too long to mark: shown without marks
  const w = m + 1, lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i * w + j] = x[i] === y[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
  const ops = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { ops.push(["=", x[i]]); i++; j++; }
    else if (lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) ops.push(["-", x[i++]]);
    else ops.push(["+", y[j++]]);
  }
  while (i < n) ops.push(["-", x[i++]]);
  while (j < m) ops.push(["+", y[j++]]);
  return ops;
}

// Two texts side by side, what the second drops struck through, what it adds marked.
function diffView(labelA, a, labelB, b) {
  const ops = diffWords(a || "", b || "");
  const left = h("div", { class: "text" }), right = h("div", { class: "text" });
  if (ops === null) { append(left, [a]); append(right, [b]); }
  else for (const [op, word] of ops) {
    if (op !== "+") left.appendChild(op === "-" ? h("del", {}, word) : document.createTextNode(visible(word)));
    if (op !== "-") right.appendChild(op === "+" ? h("ins", {}, word) : document.createTextNode(visible(word)));
  }
  return h("div", { class: "cols diff" }, h("div", {}, h("div", { class: "label" }, labelA), left),
    h("div", {}, h("div", { class: "label" }, labelB), right));
}

// -- charts (SVG) --------------------------------------------------------------------------

const PALETTE = ["#2456a6", "#c2571a", "#1f7a3d", "#8a3ab9", "#b3261e", "#0f7c8a"];

function lineChart(series, { width = 520, height = 220, xLabel = "", yLabel = "", yMin = null, yMax = null } = {}) {
  const pts = series.flatMap((one) => one.points).filter((p) => p[1] !== null && p[1] !== undefined);
  const pad = { l: 48, r: 12, t: 10, b: 34 };
  const svg = s("svg", { width, height, class: "chart", role: "img", "aria-label": yLabel });
  if (!pts.length) return h("p", { class: "muted" }, "no values to plot");
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let y0 = yMin ?? Math.min(...pts.map((p) => p[1])), y1 = yMax ?? Math.max(...pts.map((p) => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  svg.appendChild(s("line", { x1: pad.l, y1: Y(y0), x2: width - pad.r, y2: Y(y0), stroke: "#999" }));
  svg.appendChild(s("line", { x1: pad.l, y1: Y(y0), x2: pad.l, y2: Y(y1), stroke: "#999" }));
  for (const [v, y] of [[y0, Y(y0)], [y1, Y(y1)]]) svg.appendChild(s("text", { x: pad.l - 4, y: y + 4, "text-anchor": "end" }, axisLabel(v)));
  svg.appendChild(s("text", { x: pad.l, y: height - 18 }, fmt(x0)));
  svg.appendChild(s("text", { x: width - pad.r, y: height - 18, "text-anchor": "end" }, fmt(x1)));
  svg.appendChild(s("text", { x: (width + pad.l) / 2, y: height - 4, "text-anchor": "middle" }, xLabel));
  series.forEach((one, k) => {
    const color = one.color || PALETTE[k % PALETTE.length];
    const good = one.points.filter((p) => p[1] !== null && p[1] !== undefined);
    svg.appendChild(s("polyline", { points: good.map((p) => X(p[0]) + "," + Y(p[1])).join(" "), fill: "none", stroke: color,
      "stroke-width": 2, "stroke-dasharray": one.dashed ? "5 3" : null }));
    for (const p of good) svg.appendChild(s("circle", { cx: X(p[0]), cy: Y(p[1]), r: good.length > 60 ? 1 : 3, fill: color },
      s("title", {}, one.name + ": " + axisLabel(p[1]) + " at " + fmt(p[0]))));
  });
  const legend = h("div", { class: "legend" }, series.map((one, k) => {
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = one.color || PALETTE[k % PALETTE.length];
    return h("span", {}, swatch, one.name);
  }));
  return h("div", { class: "chart-box" }, h("div", { class: "label" }, yLabel), svg, legend);
}

// Horizontal bars: rows of {label, value, ci: [lo, hi] | null, parts: [[share, color, name], ...] | null};
// negative values (bias scores) grow leftwards from a zero line.
function barChart(rows, { width = 520, max = null, unit = "" } = {}) {
  const rowH = 22, labelW = 200, barW = width - labelW - 90;
  const top = max ?? Math.max(1e-9, ...rows.map((r) => Math.max(r.value ?? 0, r.ci ? r.ci[1] : 0)));
  const bottom = Math.min(0, ...rows.map((r) => Math.min(r.value ?? 0, r.ci ? r.ci[0] : 0)));
  const X = (v) => labelW + ((v - bottom) / (top - bottom)) * barW;
  const svg = s("svg", { width, height: rows.length * rowH + 6, class: "chart" });
  rows.forEach((r, i) => {
    const y = i * rowH + 3;
    svg.appendChild(s("text", { x: labelW - 6, y: y + 14, "text-anchor": "end" }, r.label.length > 32 ? "\u2026" + r.label.slice(-31) : r.label, s("title", {}, r.label)));
    let x = labelW;
    if (r.parts) for (const [share, color, name] of r.parts) {
      svg.appendChild(s("rect", { x, y, width: Math.max(0, share * barW), height: rowH - 6, fill: color }, s("title", {}, name + ": " + fmt(share * 100, 1) + "%")));
      x += share * barW;
    } else if (r.value !== null && r.value !== undefined) {
      const [a, b] = [X(Math.min(0, r.value)), X(Math.max(0, r.value))];
      svg.appendChild(s("rect", { x: a, y, width: Math.max(0, b - a), height: rowH - 6, fill: r.color || PALETTE[0] }));
    }
    if (bottom < 0) svg.appendChild(s("line", { x1: X(0), x2: X(0), y1: y, y2: y + rowH - 6, stroke: "#555" }));
    if (r.ci) {
      const [a, b] = r.ci.map(X);
      svg.appendChild(s("line", { x1: a, x2: b, y1: y + 8, y2: y + 8, stroke: "#000", "stroke-width": 1.5 }));
      for (const e of [a, b]) svg.appendChild(s("line", { x1: e, x2: e, y1: y + 3, y2: y + 13, stroke: "#000" }));
    }
    svg.appendChild(s("text", { x: labelW + barW + 6, y: y + 14 }, fmt(r.value, 3) + unit + (r.note ? " " + r.note : "")));
  });
  return svg;
}

// Bars of counts ({label: n}), largest first.
function countBars(counts, opts) {
  const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([label, value]) => ({ label, value }));
  return rows.length ? barChart(rows, opts || { width: 720 }) : h("p", { class: "muted" }, "none");
}

// -- item lists: search, filters, facets, links ------------------------------------------

// opts: text(item) -> searchable text; title(item) -> one line; detail(item) -> Node;
// filters: [{label, test(item)}] (checkboxes, all must hold); facets: [{label, value(item)}] (selects;
// a value may be a list, e.g. the principles an answer cites: the item matches any of them)
function itemList(runIndex, items, opts) {
  const PAGE = 100;
  const state = { query: "", on: new Set(), facet: {}, shown: PAGE, selected: null };
  const counter = h("span", { class: "muted count" });
  const list = h("div", { class: "list card" });
  const detail = h("div", { class: "detail" });
  const search = h("input", { type: "search", placeholder: "search the text of every item", class: "search",
    oninput: () => { state.query = search.value.toLowerCase(); state.shown = PAGE; refresh(); } });
  const controls = h("div", { class: "controls" }, search);
  for (const f of opts.filters || []) {
    const box = h("input", { type: "checkbox", class: "filter", "data-filter": f.label,
      onchange: () => { box.checked ? state.on.add(f) : state.on.delete(f); state.shown = PAGE; refresh(); } });
    controls.appendChild(h("label", {}, box, " " + f.label));
  }
  for (const facet of opts.facets || []) {
    const values = [...new Set(items.flatMap((it) => [facet.value(it)].flat()).filter((v) => v !== null && v !== undefined && v !== ""))].sort();
    if (!values.length) continue;
    const select = h("select", { class: "facet", "data-facet": facet.label,
      onchange: () => { state.facet[facet.label] = select.value ? [facet, select.value] : null; state.shown = PAGE; refresh(); } },
      h("option", { value: "" }, facet.label + ": all"), values.map((v) => h("option", { value: v }, String(v))));
    controls.appendChild(select);
  }
  controls.appendChild(counter);
  const texts = new Map(); // searchable text, built on the first search

  function matches(item) {
    for (const f of state.on) if (!f.test(item)) return false;
    for (const pick of Object.values(state.facet)) if (pick && ![pick[0].value(item)].flat().some((v) => String(v) === pick[1])) return false;
    if (state.query) {
      if (!texts.has(item)) texts.set(item, (item.id + "\n" + opts.text(item)).toLowerCase());
      if (!texts.get(item).includes(state.query)) return false;
    }
    return true;
  }

  function refresh() {
    const started = performance.now();
    const found = items.filter(matches);
    list.replaceChildren(...found.slice(0, state.shown).map((item) =>
      h("a", { class: "row" + (item === state.selected ? " on" : ""), href: link(runIndex, item.id), "data-id": item.id, title: item.id },
        item.status && item.status !== "done" ? badge(item.status, item.status) : null, rowText(item.id, opts.title(item)))));
    if (found.length > state.shown)
      list.appendChild(h("button", { onclick: () => { state.shown += PAGE; refresh(); } }, "show " + Math.min(PAGE, found.length - state.shown) + " more"));
    counter.textContent = found.length + " of " + items.length + " items";
    list.dataset.filterMs = (performance.now() - started).toFixed(1);
  }

  async function select(id) {
    const item = items.find((it) => it.id === id) || null;
    state.selected = item;
    for (const row of list.querySelectorAll(".row")) row.classList.toggle("on", row.dataset.id === id);
    if (item && item.more) {
      detail.replaceChildren(h("p", { class: "muted" }, "reading " + item.id + " \u2026"));
      await loadMore(item);
      if (state.selected !== item) return; // another item was picked meanwhile
    }
    detail.replaceChildren(item ? itemDetail(item, opts) : h("p", { class: "muted" }, "Pick an item on the left (each has a link of its own)."));
  }

  refresh();
  select(null);
  return { node: h("div", { class: "item-list" }, controls, h("div", { class: "items" }, list, detail)), select };
}

// A row: its id, then its title; a long id (an attack's model/attack/variant/behaviour) goes
// after the title, so the row's cut end takes the id and not the title.
function rowText(id, title) {
  return id.length > 20 ? [title, "  ", h("span", { class: "muted" }, id)] : id + "  " + title;
}

function itemDetail(item, opts) {
  const head = h("h2", {}, item.id, " ", badge(item.status || "done", item.status || "done"));
  if (item.status === "failed" || !item.record) {
    return h("div", { class: "card" }, head, item.error ? textBlock("why it failed", item.error) : null,
      item.input ? textBlock("input", lastUser(item.input)) : null);
  }
  return h("div", { class: "card" }, head, opts.detail(item));
}

// Runs are numbered from 1 in links, as on their tabs ("1. matrix") and in the overview ("run 1").
function link(runIndex, itemId) {
  return "#r" + (runIndex + 1) + (itemId === undefined ? "" : "/" + encodeURIComponent(itemId));
}

// -- the page ------------------------------------------------------------------------------

// One column of the overview table. A training run has steps and tokens trained on where a
// generator has items, calls and tokens generated; a row no run has a value for is left out.
function overviewRows(run) {
  const o = run.overview || {};
  const items = o.items || {};
  const usage = o.usage || {};
  const training = run.kind === "train";
  return {
    "kind": run.kind,
    "folder": run.name,
    "method": o.method,
    "items done": items.done,
    "items failed": items.failed,
    "items pending": training ? undefined : (items.pending || 0) + (items.running || 0),
    "training steps": training ? fmt(o.steps) + (o.max_steps ? " of " + fmt(o.max_steps) : "") + (o.finished ? "" : " (not finished)") : undefined,
    "tokens trained on": training ? usage.tokens : undefined,
    "model calls": usage.calls,
    "cached calls": usage.cached_calls,
    "prompt tokens": usage.prompt_tokens,
    "completion tokens": usage.completion_tokens,
    "time (first to last write)": duration(o.seconds),
    "items per minute": o.items_per_minute,
    "tokens per second": o.tokens_per_second,
  };
}

function overviewPage(host) {
  const rows = DATA.runs.map(overviewRows);
  const keys = Object.keys(rows[0] || {}).filter((key) => rows.some((row) => row[key] !== undefined && row[key] !== null));
  if ((DATA.notes || []).length) host.appendChild(h("div", { class: "card notes" }, h("h2", {}, "Not shown"),
    h("ul", {}, DATA.notes.map((note) => h("li", {}, note)))));
  host.appendChild(h("h2", {}, "Runs"));
  host.appendChild(h("div", { class: "card" }, h("table", { class: "overview" },
    h("tr", {}, h("th", {}, ""), DATA.runs.map((run, i) => h("th", {}, h("a", { href: link(i) }, "run " + (i + 1))))),
    keys.map((key) => h("tr", {}, h("th", {}, key), rows.map((row) =>
      h("td", { class: typeof row[key] === "number" ? "num" : "" }, fmt(row[key]))))))));
  DATA.runs.forEach((run, i) => host.appendChild(runSummary(run, i)));
}

function runSummary(run, i) {
  const o = run.overview || {};
  return h("div", { class: "card" }, h("h2", {}, h("a", { href: link(i) }, run.name), " ", badge(run.kind)),
    (o.failures || []).length ? h("div", {}, h("h3", {}, "failures by reason"), h("table", {},
      h("tr", {}, h("th", { class: "num" }, "items"), h("th", {}, "reason (an example)"), h("th", {}, "some items")),
      o.failures.map((g) => h("tr", {}, h("td", { class: "num" }, g.n), h("td", {}, h("div", { class: "text" }, g.example)),
        h("td", {}, g.ids.slice(0, 5).map((id) => [h("a", { href: link(i, id) }, id), " "])))))) : null,
    h("details", {}, h("summary", {}, "config"), kvTable(o.config)));
}

function genericView(run, index, host) {
  const list = itemList(index, run.view.items || [], {
    text: (it) => lastUser(it.input) + "\n" + JSON.stringify(it.record || ""),
    title: (it) => lastUser(it.input).slice(0, 80),
    detail: (it) => h("div", {}, textBlock("input", lastUser(it.input)), textBlock("record", JSON.stringify(it.record, null, 2))),
    filters: [{ label: "failed", test: (it) => it.status === "failed" }],
  });
  host.appendChild(list.node);
  return list;
}

function route() {
  const match = /^#r(\d+)(?:\/(.*))?$/.exec(location.hash);
  const runIndex = match ? Number(match[1]) - 1 : null;
  const itemId = match && match[2] !== undefined ? decodeURIComponent(match[2]) : null;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("on", a.getAttribute("href") === (runIndex === null ? "#" : link(runIndex)));
  const main = document.querySelector("main");
  if (runIndex === null || runIndex < 0 || !DATA.runs[runIndex]) {
    route.shown = null;
    main.replaceChildren();
    overviewPage(main);
    return;
  }
  if (route.shown !== runIndex) {
    route.shown = runIndex;
    const run = DATA.runs[runIndex];
    main.replaceChildren(runSummary(run, runIndex));
    const host = h("div", { class: "view", "data-kind": run.kind });
    main.appendChild(host);
    route.view = (VIEWS[run.kind] || genericView)(run, runIndex, host);
  }
  if (route.view && route.view.select) route.view.select(itemId);
}

async function start() {
  DATA = await readBlock(document.getElementById("report-data"));
  const nav = h("nav", {}, h("a", { href: "#" }, "overview"), DATA.runs.map((run, i) =>
    h("a", { href: link(i), title: run.name }, (i + 1) + ". " + run.kind)));
  document.getElementById("app").replaceChildren(
    h("header", {}, h("h1", {}, "selfalign report"), nav, h("span", { class: "muted" }, "selfalign " + DATA.version)),
    h("main", {}));
  window.addEventListener("hashchange", route);
  route();
}
