// Evaluations: win / tie / lose bars with intervals, every metric with its interval per model
// and benchmark, scores per category, attack success rates, and every judged item.

const OUTCOME_COLORS = [["wins", "#1f7a3d"], ["ties", "#b9bec9"], ["losses", "#b3261e"]];

function evalFigureRows(figures) {
  return figures.map((f) => ({ label: f.model + (f.vs ? " vs " + f.vs : ""), value: f.value, ci: f.ci,
    note: "n=" + f.n + (f.failed ? ", " + f.failed + " failed" : "") }));
}

function evalSections(results) {
  const figures = results.figures || [];
  const whole = figures.filter((f) => f.category === null || f.category === undefined);
  const out = [];
  const pairwise = whole.filter((f) => f.kind === "win_rate");
  if (pairwise.length) {
    out.push(h("h3", {}, "pairwise: wins, ties and losses against the baseline (judged in both orders)"));
    for (const f of pairwise) {
      const d = f.details || {};
      const total = (d.wins || 0) + (d.ties || 0) + (d.losses || 0) || 1;
      out.push(h("div", {}, h("div", { class: "label" }, f.bench + ": " + f.model + " vs " + f.vs + " \u00b7 win rate " + fmt(f.value, 3) +
        (f.ci ? " [" + fmt(f.ci[0], 3) + ", " + fmt(f.ci[1], 3) + "]" : "") + " \u00b7 " + (d.wins || 0) + " wins, " + (d.ties || 0) + " ties, " +
        (d.losses || 0) + " losses \u00b7 position consistency " + fmt(d.position_consistency, 2)),
        barChart([{ label: f.model, value: f.value, ci: f.ci, parts: OUTCOME_COLORS.map(([k, c]) => [(d[k] || 0) / total, c, k]) }], { width: 720, max: 1 })));
    }
  }
  const keys = [...new Set(whole.filter((f) => f.kind !== "win_rate").map((f) => f.bench + "\u0000" + f.metric + "\u0000" + f.kind))];
  if (keys.length) out.push(h("h3", {}, "metrics per benchmark, with 95% intervals"));
  for (const key of keys) {
    const [bench, metric, kind] = key.split("\u0000");
    const rows = whole.filter((f) => f.bench === bench && f.metric === metric && f.kind === kind);
    // rates and StrongREJECT in [0, 1], rubric grades 1-10; other scales (log-likelihood differences, bias scores) as they come
    const max = rows.some((f) => f.value > 10 || f.value < 0) ? null : rows.some((f) => f.value > 1) ? 10 : 1;
    const title = (metric === "attack_success_rate" ? "attack success rate" : metric) + (kind === "difference" ? " (minus the baseline's)" : "");
    out.push(h("div", { class: "figure" }, h("div", { class: "label" }, bench + ": " + title),
      kind === "difference" ? h("table", {}, rows.map((f) => h("tr", {}, h("td", {}, f.model + " \u2212 " + f.vs), h("td", { class: "num" }, fmt(f.value, 3)),
        h("td", {}, f.ci ? "[" + fmt(f.ci[0], 3) + ", " + fmt(f.ci[1], 3) + "]" : ""), h("td", { class: "muted" }, "n=" + f.n))))
        : barChart(evalFigureRows(rows), { width: 720, max })));
  }
  const byCategory = figures.filter((f) => f.category !== null && f.category !== undefined);
  if (byCategory.length) out.push(h("h3", {}, "per category, with 95% intervals"));
  const models = new Set(byCategory.map((f) => f.model));
  for (const key of new Set(byCategory.map((f) => f.bench + "\u0000" + f.metric))) {
    const [bench, metric] = key.split("\u0000");
    const rows = byCategory.filter((f) => f.bench === bench && f.metric === metric)
      .sort((a, b) => a.category.localeCompare(b.category) || a.model.localeCompare(b.model));
    const max = rows.some((f) => f.value > 10 || f.value < 0) ? null : rows.some((f) => f.value > 1) ? 10 : 1;
    out.push(h("div", { class: "figure" }, h("div", { class: "label" }, bench + ": " + metric + " per category"),
      barChart(rows.map((f) => ({ label: f.category + (models.size > 1 ? " \u00b7 " + f.model : ""), value: f.value, ci: f.ci,
        note: "n=" + f.n })), { width: 720, max })));
  }
  if (byCategory.length) {
    out.push(h("h3", {}, "per category (table)"));
    out.push(h("table", { class: "categories" }, h("tr", {}, ["benchmark", "category", "metric", "model", "value", "95% interval", "n"].map((k) => h("th", {}, k))),
      byCategory.map((f) => h("tr", {}, h("td", {}, f.bench), h("td", {}, f.category), h("td", {}, f.metric), h("td", {}, f.model + (f.vs ? " vs " + f.vs : "")),
        h("td", { class: "num" }, fmt(f.value, 3)), h("td", {}, f.ci ? "[" + fmt(f.ci[0], 3) + ", " + fmt(f.ci[1], 3) + "]" : ""), h("td", { class: "num" }, f.n)))));
  }
  return out;
}

function judgedDetail(it) {
  const r = it.record || {};
  return h("div", {},
    h("div", {}, badge(it.scorer), badge(it.bench), it.category ? badge(it.category) : null, badge("value " + fmt(r.value, 3))),
    textBlock("prompt", it.prompt),
    it.answer !== undefined ? textBlock("answer of " + it.model, it.answer) : null,
    it.candidate !== undefined ? diffView("baseline: " + it.vs, it.baseline, "candidate: " + it.model, it.candidate) : null,
    r.outcome ? h("p", {}, "outcome for the candidate: ", h("b", {}, r.outcome), " (first order: " + r.candidate_first + ", second: " + r.candidate_second + ")") : null,
    r.reason !== undefined ? textBlock("the judge's reason", r.reason) : null,
    (r.reasons || []).map((reason, k) => textBlock("the judge's reason, " + (k ? "second" : "first") + " order", reason)),
    r.phrase ? textBlock("refusal phrase found", r.phrase) : null);
}

VIEWS["eval"] = function (run, index, host) {
  const results = run.view.results || {};
  host.appendChild(h("div", { class: "card" }, h("h3", {}, "models"), h("table", {},
    h("tr", {}, ["model", "baseline", "answered", "failed", "formats"].map((k) => h("th", {}, k))),
    (results.models || []).map((m) => h("tr", {}, h("td", {}, m.spec), h("td", {}, m.baseline ? "yes" : ""), h("td", { class: "num" }, m.answered),
      h("td", { class: "num" }, m.failed), h("td", {}, (m.formats || []).join(", "))))),
  h("p", { class: "muted" }, "judge: " + (results.judge || "none") + " \u00b7 benchmarks: " + (results.benchmarks || []).map((b) => b.name + " (" + b.n + ")").join(", "))));
  host.appendChild(h("div", { class: "card" }, evalSections(results)));
  const items = (run.view.judged || []).map((it) => ({ ...it, id: it.scorer + ":" + it.model + (it.vs ? ":vs:" + it.vs : "") + ":" + it.id, input: null }));
  host.appendChild(h("h2", {}, "every judged item"));
  const list = itemList(index, items, {
    text: (it) => [it.prompt, it.answer || "", it.candidate || "", it.baseline || "", it.error || "", (it.record || {}).reason || "", ((it.record || {}).reasons || []).join("\n")].join("\n"),
    title: (it) => "value " + fmt((it.record || {}).value, 2) + " \u00b7 " + it.prompt.slice(0, 70),
    detail: judgedDetail,
    filters: [{ label: "failed", test: (it) => it.status === "failed" },
      { label: "scored 1 (refused, harmful, or won)", test: (it) => !!(it.record && it.record.value === 1) }],
    facets: [{ label: "scorer", value: (it) => it.scorer }, { label: "model", value: (it) => it.model },
      { label: "benchmark", value: (it) => it.bench }, { label: "category", value: (it) => it.category }],
  });
  host.appendChild(list.node);
  return list;
};
