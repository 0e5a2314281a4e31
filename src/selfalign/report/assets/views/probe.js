// Probes: the refusal direction's separation (held-out AUROC) by layer for each model, the
// refusal rate as asked, with the direction ablated and with it added, and base vs tuned.

const PROBE_STEPS = [["harmful", "harmful, as asked"], ["harmful-ablated", "harmful, direction ablated"],
  ["harmless", "harmless, as asked"], ["harmless-added", "harmless, direction added"]];

function probeFigures(results) {
  const models = results.models || [];
  const done = models.filter((m) => m.auroc);
  const out = [];
  if (done.length) {
    out.push(h("div", { class: "cols" },
      lineChart(done.map((m) => ({ name: m.model + " (layer " + m.layer + ")", points: m.auroc.map((v, i) => [i, v]) })),
        { xLabel: "layer", yLabel: "separation of held-out prompts (AUROC)", yMin: 0, yMax: 1 }),
      lineChart(done.map((m) => ({ name: m.model, points: m.norm.map((v, i) => [i, v]) })),
        { xLabel: "layer", yLabel: "length of the direction (difference of means)" })));
    for (const m of done) {
      out.push(h("div", { class: "figure" }, h("div", { class: "label" }, "refusal rate \u00b7 " + m.model + " \u00b7 direction of layer " + m.layer +
        " \u00b7 AUROC there " + fmt(m.auroc_at_layer.value, 3) + " [" + fmt(m.auroc_at_layer.ci[0], 3) + ", " + fmt(m.auroc_at_layer.ci[1], 3) + "]"),
        barChart(PROBE_STEPS.filter(([k]) => m.refusal_rate[k]).map(([k, label]) => ({ label, value: m.refusal_rate[k].value,
          ci: m.refusal_rate[k].ci, color: k.endsWith("ed") ? null : "#8a8f99", note: "n=" + m.refusal_rate[k].n })), { width: 720, max: 1 })));
    }
  }
  const c = results.comparison;
  if (c && c.comparable) {
    out.push(h("h3", {}, "base vs tuned"));
    out.push(h("p", {}, "cosine between the two directions at layer " + c.layer + ": " + fmt(c.cosine_at_layer, 3) +
      "; change in AUROC there: " + fmt(c.auroc_change[c.layer], 3)));
    out.push(h("div", { class: "cols" },
      lineChart([{ name: "cosine(base, tuned)", points: c.cosine.map((v, i) => [i, v]) }], { xLabel: "layer", yLabel: "cosine between the directions", yMin: -1, yMax: 1 }),
      lineChart([{ name: "AUROC tuned - base", points: c.auroc_change.map((v, i) => [i, v]) }], { xLabel: "layer", yLabel: "change in separation" })));
  } else if (c) out.push(h("p", { class: "muted" }, "base vs tuned: " + c.reason));
  return out;
}

function probeDetail(it) {
  const r = it.record || {};
  if (!r.answers) return h("div", {}, h("p", { class: "muted" }, "per-layer figures of this step are drawn above"), r.auroc ? kvTable({ layer: r.layer, layers: r.layers }) : null);
  return h("div", {}, r.answers.map((a, i) => h("div", {}, r.refused[i] ? badge("refused", "bad") : badge("answered"),
    textBlock(r.prompts[i], a))));
}

VIEWS["probe"] = function (run, index, host) {
  const results = run.view.results;
  host.appendChild(h("div", { class: "card" }, results ? probeFigures(results)
    : h("p", { class: "muted" }, "no results.json yet: rerun the probe command to finish the run and write it")));
  host.appendChild(h("h2", {}, "every step"));
  const list = itemList(index, run.view.items, {
    text: (it) => [it.id, it.record && it.record.answers ? it.record.answers.join("\n") : ""].join("\n"),
    title: (it) => (it.input.extra ? it.input.extra.model + " \u00b7 " + it.input.extra.step : it.id),
    detail: probeDetail,
    filters: [{ label: "failed", test: (it) => it.status === "failed" }],
    facets: [{ label: "model", value: (it) => (it.input.extra ? it.input.extra.model : null) },
      { label: "step", value: (it) => (it.input.extra ? it.input.extra.step : null) }],
  });
  host.appendChild(list.node);
  return list;
};
