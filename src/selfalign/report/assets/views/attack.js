// Attacks: attack success rate per attack (and variant) and model with 95% intervals beside
// the no-attack baseline, per harm category, over-refusal, and every attempt with its verdicts.

const ATTACK_METRICS = [["attack_success_rate", "attack success rate"], ["strongreject", "StrongREJECT score"],
  ["leak_rate", "leak rate (privacy)"], ["over_refusal", "over-refusal on benign behaviours (asked plainly)"],
  ["exposure", "exposure of planted canaries, bits (rank: in the sample, at most log2(sample + 1); skew-normal: "
    + "the fitted tail, beyond the sample; per repetition count below)", null],
  ["extraction_rate", "canaries extracted by greedy decoding"]];

function attackLabel(f) {
  return f.attack + (f.variant ? " / " + (f.variant === "any" ? "any variant" : f.variant) : "");
}

function attackSections(results) {
  const figures = results.figures || [];
  const whole = figures.filter((f) => f.category === null || f.category === undefined);
  const out = [];
  for (const [metric, title, bound = 1] of ATTACK_METRICS) {
    // an open-ended metric (exposure): one scale for all its charts, so models and scorers compare by length
    const max = bound ?? Math.max(1e-9, ...whole.filter((f) => f.metric === metric).map((f) => Math.max(f.value ?? 0, f.ci ? f.ci[1] : 0)));
    for (const scorer of [...new Set(whole.filter((f) => f.metric === metric).map((f) => f.scorer))])
      for (const model of results.models || []) {
        const rows = whole.filter((f) => f.metric === metric && f.scorer === scorer && f.model === model);
        if (!rows.length) continue;
        out.push(h("div", { class: "figure" }, h("div", { class: "label" }, title + " \u00b7 scorer " + scorer + " \u00b7 " + model),
          barChart(rows.map((f) => ({ label: attackLabel(f), value: f.value, ci: f.ci, color: f.attack === "none" ? "#8a8f99" : null,
            note: "n=" + f.n + (f.failed ? ", " + f.failed + " failed" : "") })), { width: 720, max })));
      }
  }
  const byCategory = figures.filter((f) => f.category !== null && f.category !== undefined);
  if (byCategory.length) {
    out.push(h("h3", {}, "per harm category"));
    out.push(h("table", { class: "categories" }, h("tr", {}, ["model", "attack", "scorer", "metric", "category", "value", "95% interval", "n"].map((k) => h("th", {}, k))),
      byCategory.map((f) => h("tr", {}, h("td", {}, f.model), h("td", {}, attackLabel(f)), h("td", {}, f.scorer), h("td", {}, f.metric), h("td", {}, f.category),
        h("td", { class: "num" }, fmt(f.value, 3)), h("td", {}, f.ci ? "[" + fmt(f.ci[0], 3) + ", " + fmt(f.ci[1], 3) + "]" : ""), h("td", { class: "num" }, f.n)))));
  }
  return out;
}

function attemptSucceeded(rec) {
  return Object.values(rec.scores || {}).some((s) => s.success === true);
}

function attemptDetail(it) {
  const r = it.record;
  return h("div", {},
    h("div", {}, badge(r.attack), r.variant ? badge(r.variant) : null, badge(r.harmful ? "harmful" : "benign"),
      r.category ? badge(r.category) : null, attemptSucceeded(r) ? badge("attack succeeded", "bad") : null),
    textBlock("behaviour", lastUser(it.input)),
    h("h3", {}, "what the attack sent"),
    r.messages.map((m) => textBlock(m.role, m.content)),
    textBlock("the model's answer", r.answer),
    r.judged !== r.answer ? textBlock("the answer as judged (decoded)", r.judged) : null,
    h("h3", {}, "verdicts"),
    h("table", {}, h("tr", {}, ["scorer", "metric", "value", "success", "reason"].map((k) => h("th", {}, k))),
      Object.entries(r.scores || {}).map(([name, sc]) => h("tr", {}, h("td", {}, name), h("td", {}, sc.metric || ""),
        h("td", { class: "num" }, sc.error ? "" : fmt(sc.value, 3)), h("td", {}, sc.success === true ? "yes" : sc.success === false ? "no" : ""),
        h("td", {}, h("div", { class: "text" }, sc.error || sc.reason || sc.phrase || ""))))),
    Object.keys(r.details || {}).length ? h("details", {}, h("summary", {}, "details (conversation, suffix, loss curve)"),
      h("div", { class: "text" }, JSON.stringify(r.details, null, 2))) : null);
}

VIEWS["attack"] = function (run, index, host) {
  const results = run.view.results;
  host.appendChild(h("div", { class: "card" }, results
    ? [h("p", { class: "muted" }, "models: " + (results.models || []).join(", ") + " \u00b7 judge: " + (results.judge || "none") +
        (results.attacker ? " \u00b7 attacker: " + results.attacker : "") + " \u00b7 behaviours: " + results.behaviors.harmful + " harmful, " +
        results.behaviors.benign + " benign (" + results.behaviors.source + ")"), attackSections(results)]
    : h("p", { class: "muted" }, "no results.json yet: rerun the attack command to finish the run and write it")));
  host.appendChild(h("h2", {}, "every attempt"));
  const list = itemList(index, run.view.items, {
    text: (it) => [lastUser(it.input), it.error || "", it.record ? [it.record.answer, ...it.record.messages.map((m) => m.content)].join("\n") : ""].join("\n"),
    title: (it) => (it.record ? (attemptSucceeded(it.record) ? "\u26a0 " : "") + attackLabel(it.record) + " \u00b7 " : "") + lastUser(it.input).slice(0, 80),
    detail: attemptDetail,
    filters: [{ label: "failed", test: (it) => it.status === "failed" },
      { label: "attack succeeded", test: (it) => !!(it.record && attemptSucceeded(it.record)) }],
    facets: [{ label: "attack", value: (it) => (it.record ? it.record.attack : null) },
      { label: "variant", value: (it) => (it.record ? it.record.variant : null) },
      { label: "model", value: (it) => (it.record ? it.record.model : null) },
      { label: "category", value: (it) => (it.record ? it.record.category : null) }],
  });
  host.appendChild(list.node);
  return list;
};
