// SELF-ALIGN stage 4: the engraved model's verbose answers, kept or dropped (and why); in a
// self-align folder, beside the stage-2 principled answer to the same question.

VIEWS["verbose"] = function (run, index, host) {
  const items = run.view.items;
  const principled = run.view.principled || {};
  const dropped = {};
  for (const it of items) if (it.record && it.record.dropped) dropped[it.record.dropped] = (dropped[it.record.dropped] || 0) + 1;
  const kept = items.filter((it) => it.record && !it.record.dropped).length;
  host.appendChild(h("div", { class: "card" },
    h("p", {}, kept + " of " + items.length + " verbose answers kept as training data (distillation)"),
    h("h3", {}, "answers dropped, by reason"), countBars(dropped)));
  const list = itemList(index, items, {
    text: (it) => [lastUser(it.input), it.error || "", it.record ? it.record.answer : "", principled[it.id] || ""].join("\n"),
    title: (it) => (it.record && it.record.dropped ? "\u2717 " : "") + lastUser(it.input).slice(0, 90),
    detail: (it) => h("div", {},
      h("div", {}, keptBadge(it.record), badge("finish: " + it.record.finish_reason)),
      textBlock("question", lastUser(it.input)),
      principled[it.id] !== undefined
        ? diffView("principled answer (stage 2)", principled[it.id], "verbose answer (stage 4)", it.record.answer)
        : textBlock("verbose answer", it.record.answer)),
    filters: [
      { label: "failed", test: (it) => it.status === "failed" },
      { label: "kept", test: (it) => !!(it.record && !it.record.dropped) },
      { label: "dropped", test: (it) => !!(it.record && it.record.dropped) },
    ],
    facets: [{ label: "dropped because", value: (it) => (it.record ? it.record.dropped : null) }],
  });
  host.appendChild(list.node);
  return list;
};
