// Sandbox: the grid per round (each agent coloured by alignment and engagement, stance marked),
// steps over rounds, the per-round curves, and one agent's turns when it is clicked.

function ratingColor(value) {
  if (value === null || value === undefined) return "#c9ccd3";
  return "hsl(" + Math.round(((value - 1) / 6) * 120) + ", 62%, 46%)"; // 1 red ... 7 green
}

function sandboxTurn(it) {
  const r = it.record;
  const seen = (o) => (o && o.alignment !== null && o.alignment !== undefined
    ? "alignment " + o.alignment + ", engagement " + fmt(o.engagement) : "unrated" + (o && o.error ? " (" + o.error + ")" : ""));
  return h("div", { class: "card turn" },
    h("h3", {}, "round " + r.round + " \u00b7 agent " + r.agent + " (" + r.stance + ")"),
    textBlock("question", r.question),
    (r.memory || []).length ? h("details", {}, h("summary", {}, "recalled " + r.memory.length + " memories"),
      r.memory.map((m) => textBlock("similarity " + fmt(m.similarity, 3) + " \u00b7 " + m.source, m.question + "\n\n" + m.answer))) : null,
    h("h3", {}, "neighbours' ratings (mean " + fmt(r.mean_rating) + ")"),
    h("table", {}, (r.feedback || []).map((f) => h("tr", {}, h("td", {}, "agent " + f.rater),
      h("td", { class: "num" }, f.rating === null || f.rating === undefined ? badge("failed", "failed") : f.rating + "/7"),
      h("td", {}, f.reason || f.error || "")))),
    diffView("draft \u00b7 observers: " + seen(r.observed_draft), r.draft, "revision \u00b7 observers: " + seen(r.observed_revision), r.revision),
    r.observed_revision && r.observed_revision.reason ? textBlock("observer on the revision", r.observed_revision.reason) : null);
}

VIEWS["sandbox"] = function (run, index, host) {
  const items = run.view.items;
  const config = (run.overview || {}).config || {};
  const grid = config.grid || Math.ceil(Math.sqrt(Math.max(1, ...items.map((it) => ((it.input.extra || {}).agent ?? 0) + 1))));
  const rounds = Math.max(1, config.rounds || 1, ...items.map((it) => (it.input.extra || {}).round || 1));
  const byTurn = new Map(items.map((it) => [(it.input.extra || {}).round + "/" + (it.input.extra || {}).agent, it]));
  const state = { round: 1, which: "observed_revision", agent: null };

  // the curves, from the metrics each finished round stored
  const m = run.view.rounds || [];
  const curve = (key) => m.map((x) => [x.round, x[key]]);
  host.appendChild(h("div", { class: "card cols" },
    lineChart([{ name: "alignment, draft", points: curve("alignment_draft"), dashed: true, color: PALETTE[0] },
      { name: "alignment, revision", points: curve("alignment_revision"), color: PALETTE[0] },
      { name: "engagement, draft", points: curve("engagement_draft"), dashed: true, color: PALETTE[1] },
      { name: "engagement, revision", points: curve("engagement_revision"), color: PALETTE[1] }],
    { xLabel: "round", yLabel: "observers' mean rating (1-7), before and after revision", yMin: 1, yMax: 7 }),
    lineChart([{ name: "drafts improved by revision", points: curve("improved") }],
      { xLabel: "round", yLabel: "share of drafts the revision improved", yMin: 0, yMax: 1 })));

  // the grid
  const slider = h("input", { type: "range", min: 1, max: rounds, value: 1, class: "round-slider",
    oninput: () => { state.round = Number(slider.value); draw(); } });
  const which = h("select", { class: "which", onchange: () => { state.which = which.value; draw(); } },
    h("option", { value: "observed_revision" }, "after revision"), h("option", { value: "observed_draft" }, "draft"));
  const roundLabel = h("b", {});
  const picture = h("div", { class: "grid-picture" });
  const agentPanel = h("div", { class: "agent-panel" });
  const legend = h("div", { class: "legend muted" }, "each agent: left half alignment, right half engagement (",
    [1, 4, 7].map((v) => { const sw = h("span", { class: "swatch" }); sw.style.background = ratingColor(v); return [sw, v + " "]; }),
    "; grey: failed or unrated); G good stance, B bad stance. Click an agent for its turns.");
  host.appendChild(h("div", { class: "card" }, h("div", { class: "controls" },
    h("button", { onclick: () => { slider.value = Math.max(1, state.round - 1); slider.dispatchEvent(new Event("input")); } }, "\u2190"),
    slider, h("button", { onclick: () => { slider.value = Math.min(rounds, state.round + 1); slider.dispatchEvent(new Event("input")); } }, "\u2192"),
    roundLabel, which), legend, h("div", { class: "cols" }, picture, agentPanel)));

  function draw() {
    roundLabel.textContent = "round " + state.round + " of " + rounds;
    const size = Math.max(14, Math.min(54, Math.floor(520 / grid)));
    const svg = s("svg", { width: grid * size + 2, height: grid * size + 2, class: "grid" });
    for (let agent = 0; agent < grid * grid; agent++) {
      const it = byTurn.get(state.round + "/" + agent);
      const seen = it && it.record ? it.record[state.which] || {} : {};
      const x = (agent % grid) * size + 1, y = Math.floor(agent / grid) * size + 1;
      const stance = it && it.record ? it.record.stance : null;
      const cell = s("g", { class: "cell" + (agent === state.agent ? " on" : ""), "data-agent": agent, onclick: () => pick(agent) },
        s("rect", { x, y, width: size / 2, height: size, fill: ratingColor(seen.alignment) }),
        s("rect", { x: x + size / 2, y, width: size / 2, height: size, fill: ratingColor(seen.engagement) }),
        s("rect", { x, y, width: size, height: size, fill: "none", stroke: agent === state.agent ? "#000" : "#fff", "stroke-width": agent === state.agent ? 3 : 1 }),
        stance && size >= 18 ? s("text", { x: x + 3, y: y + 12 }, stance === "good" ? "G" : "B") : null,
        s("title", {}, "agent " + agent + (stance ? " (" + stance + ")" : "") + ": alignment " + fmt(seen.alignment) + ", engagement " + fmt(seen.engagement) + (it && it.status === "failed" ? " (failed)" : "")));
      svg.appendChild(cell);
    }
    picture.replaceChildren(svg);
  }

  function pick(agent) {
    state.agent = agent;
    const turns = items.filter((it) => (it.input.extra || {}).agent === agent);
    agentPanel.replaceChildren(h("h3", {}, "agent " + agent), ...turns.map((it) => (it.record ? sandboxTurn(it)
      : h("div", { class: "card" }, badge(it.status, it.status), it.id, " ", it.error || ""))));
    draw();
  }

  draw();
  const list = itemList(index, items, {
    text: (it) => [it.error || "", it.record ? [it.record.question, it.record.draft, it.record.revision, ...(it.record.feedback || []).map((f) => f.reason || "")].join("\n") : lastUser(it.input)].join("\n"),
    title: (it) => (it.record ? it.record.question : lastUser(it.input)).slice(0, 80),
    detail: sandboxTurn,
    filters: [
      { label: "failed", test: (it) => it.status === "failed" },
      { label: "revision rated better", test: (it) => !!(it.record && it.record.observed_revision.alignment > it.record.observed_draft.alignment) },
      { label: "failed ratings", test: (it) => !!(it.record && (it.record.feedback || []).some((f) => f.rating === null || f.rating === undefined)) },
    ],
    facets: [{ label: "round", value: (it) => (it.input.extra || {}).round },
      { label: "stance", value: (it) => (it.record ? it.record.stance : null) }],
  });
  host.appendChild(h("h2", {}, "every turn"));
  host.appendChild(list.node);
  return list;
};
