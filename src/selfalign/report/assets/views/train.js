// Training runs: loss and learning rate by step, from the trainer's state.

VIEWS["train"] = function (run, index, host) {
  const log = run.view.log || [];
  const series = (key) => log.filter((e) => e[key] !== undefined).map((e) => [e.step, e[key]]);
  const o = run.overview || {};
  host.appendChild(h("div", { class: "card" },
    h("p", {}, "steps " + fmt(o.steps) + (o.max_steps ? " of " + fmt(o.max_steps) : "") + " \u00b7 " +
      (o.finished ? "finished" : "not finished: the curves end at the last whole checkpoint") + " \u00b7 from " + run.view.state_file),
    h("div", { class: "cols" },
      lineChart([{ name: "training loss", points: series("loss") }], { xLabel: "step", yLabel: "loss" }),
      lineChart([{ name: "learning rate", points: series("learning_rate") }], { xLabel: "step", yLabel: "learning rate" })),
    series("grad_norm").length ? lineChart([{ name: "gradient norm", points: series("grad_norm") }], { xLabel: "step", yLabel: "gradient norm" }) : null,
    Object.keys(run.view.summary || {}).length ? h("details", {}, h("summary", {}, "summary"), kvTable(run.view.summary)) : null));
  return null;
};
