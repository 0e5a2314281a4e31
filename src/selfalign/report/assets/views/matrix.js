// MATRIX: the scene, the events as a timeline, the consequences, initial and revised answers.

// The list reads a record's brief (counts and the situation): on a large page the scene and the
// events are read only when an item is opened.
function matrixConflict(item) {
  return !!(item.record && item.record.brief.value_conflicts);
}

function matrixScene(scene) {
  return h("div", {},
    h("h3", {}, "scene"),
    h("table", {},
      h("tr", {}, h("th", {}, "situation"), h("td", {}, scene.situation)),
      h("tr", {}, h("th", {}, "ego (the asker)"), h("td", {}, scene.ego)),
      scene.target ? h("tr", {}, h("th", {}, "target"), h("td", {}, scene.target)) : null,
      (scene.impact || []).length ? h("tr", {}, h("th", {}, "impact, step by step"), h("td", {}, h("ol", {}, scene.impact.map((x) => h("li", {}, x))))) : null,
      h("tr", {}, h("th", {}, "outcome"), h("td", {}, scene.outcome))),
    h("h3", {}, "roles"),
    h("table", { class: "roles" }, h("tr", {}, h("th", {}, "name"), h("th", {}, "kind"), h("th", {}, "traits and duties, or state")),
      (scene.roles || []).map((r) => h("tr", {}, h("td", {}, r.name), h("td", {}, r.kind), h("td", {}, r.description)))),
    h("h3", {}, "the ego's plan"),
    h("ol", {}, (scene.plan || []).map((step) => h("li", {}, step))));
}

function matrixEvent(e) {
  const kind = !e.feasible ? "rejected" : e.value_conflict ? "conflict" : "";
  const event = h("div", { class: "event " + kind, id: "event-" + e.index },
    h("div", { class: "head" }, "#" + e.index + " ", h("span", { class: "muted" }, "step " + (e.step + 1) + (e.attempt ? ", retry " + e.attempt : "") +
      (e.responds_to !== null && e.responds_to !== undefined ? ", reacts to #" + e.responds_to : "") + " \u00b7 "), e.actor),
    h("div", {}, e.action),
    h("div", {}, e.feasible ? badge("feasible", "ok") : badge("rejected", "bad"), h("span", { class: "muted" }, e.reason)),
    e.consequence ? h("div", {}, h("span", { class: "label" }, "consequence: "), e.consequence) : null,
    e.value_conflict ? h("div", {}, badge("value conflict", "warn"), e.conflict) : null,
    (e.perceivers || []).length ? h("div", { class: "muted" }, "perceived by: " + e.perceivers.join(", ")) : null,
    (e.not_reacted || []).length ? h("div", { class: "muted" }, "left without a turn: " + e.not_reacted.join(", ")) : null);
  event.style.marginLeft = (e.depth || 0) * 26 + "px";
  return event;
}

function matrixDetail(item) {
  const r = item.record;
  const c = r.consequences || {};
  return h("div", {},
    textBlock("instruction", lastUser(item.input)),
    h("div", {}, r.harm_found ? badge("harm found", "warn") : badge("no harm found: the first answer is kept", "ok"),
      badge("stopped: " + r.stopped), badge("finish: " + r.finish_reason)),
    matrixScene(r.scene || {}),
    h("h3", {}, "events (" + (r.events || []).length + ")"),
    h("div", { class: "timeline" }, (r.events || []).map(matrixEvent)),
    r.memory && r.memory.summary ? textBlock("the modulator's memory, summarised", r.memory.summary) : null,
    h("h3", {}, "consequences"),
    (c.harms || []).length ? h("ul", {}, c.harms.map((x) => h("li", {}, h("b", {}, x.who), ": ", x.what))) : h("p", { class: "muted" }, "no harm named"),
    textBlock("summary", c.summary),
    c.answer_gist ? textBlock("the help the answer offers, without harm", c.answer_gist) : null,
    h("h3", {}, "answers"),
    diffView("initial answer", r.initial, "revised answer", r.revised),
    r.calls ? h("details", {}, h("summary", {}, "the simulation's " + r.calls.length + " model calls"),
      r.calls.map((call) => h("div", { class: "card" }, h("b", {}, call.key),
        call.messages.map((m) => textBlock(m.role, m.content)), textBlock("answer", call.answer)))) : null);
}

VIEWS["matrix"] = function (run, index, host) {
  const items = run.view.items;
  const done = items.filter((it) => it.record);
  host.appendChild(h("div", { class: "card" }, h("h3", {}, "across the run"), h("table", {},
    h("tr", {}, h("th", {}, "items with harm found"), h("td", { class: "num" }, done.filter((it) => it.record.harm_found).length + " of " + done.length)),
    h("tr", {}, h("th", {}, "items with a value conflict"), h("td", { class: "num" }, done.filter(matrixConflict).length)),
    h("tr", {}, h("th", {}, "events per item (mean)"), h("td", { class: "num" }, fmt(done.reduce((n, it) => n + it.record.brief.events, 0) / Math.max(1, done.length)))),
    h("tr", {}, h("th", {}, "rejected actions"), h("td", { class: "num" }, done.reduce((n, it) => n + it.record.brief.rejected, 0))))));
  const list = itemList(index, items, {
    text: (it) => [lastUser(it.input), it.error || "", it.record ? [it.record.initial, it.record.revised, it.record.brief.situation].join("\n") : ""].join("\n"),
    title: (it) => lastUser(it.input).slice(0, 90),
    detail: matrixDetail,
    filters: [
      { label: "failed", test: (it) => it.status === "failed" },
      { label: "value conflicts", test: matrixConflict },
      { label: "harm found", test: (it) => !!(it.record && it.record.harm_found) },
      { label: "stopped at max events", test: (it) => !!(it.record && it.record.stopped === "max_events") },
    ],
  });
  host.appendChild(list.node);
  return list;
};
