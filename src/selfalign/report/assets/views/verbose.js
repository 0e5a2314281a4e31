// SELF-ALIGN stage 4: the engraved model's verbose answers, kept or dropped (and why); in a
// self-align folder, with stage 2's work on the same question: the internal thoughts, the
// principles cited, and the principled answer beside the verbose one, differences marked.

function verboseDetail(it, stage2) {
  return h("div", {},
    h("div", {}, keptBadge(it.record), badge("finish: " + it.record.finish_reason)),
    textBlock("question", lastUser(it.input)),
    stage2 ? [
      h("h3", {}, "stage 2: principled answer"),
      h("div", {}, stage2.dropped ? badge("dropped: " + stage2.dropped, "bad") : badge("kept", "ok"),
        (stage2.principles || []).map((p) => badge(p))),
      textBlock("internal thoughts", stage2.thoughts),
      h("h3", {}, "stage 4: verbose answer"),
      diffView("principled answer (stage 2)", stage2.answer, "verbose answer (stage 4)", it.record.answer),
    ] : textBlock("verbose answer", it.record.answer));
}

VIEWS["verbose"] = function (run, index, host) {
  const items = run.view.items;
  const principled = run.view.principled || {};
  const dropped = {}, cited = {};
  for (const it of items) if (it.record && it.record.dropped) dropped[it.record.dropped] = (dropped[it.record.dropped] || 0) + 1;
  for (const it of items) for (const p of (principled[it.id] || {}).principles || []) cited[p] = (cited[p] || 0) + 1;
  const kept = items.filter((it) => it.record && !it.record.dropped).length;
  host.appendChild(h("div", { class: "card" },
    h("p", {}, kept + " of " + items.length + " verbose answers kept as training data (distillation)"),
    h("h3", {}, "answers dropped, by reason"), countBars(dropped),
    Object.keys(principled).length ? [h("h3", {}, "principles cited in stage 2 for these questions"), countBars(cited)] : null));
  const list = itemList(index, items, {
    text: (it) => {
      const stage2 = principled[it.id] || {};
      return [lastUser(it.input), it.error || "", it.record ? it.record.answer : "", stage2.answer || "", stage2.thoughts || "",
        (stage2.principles || []).join(" ")].join("\n");
    },
    title: (it) => (it.record && it.record.dropped ? "\u2717 " : "") + lastUser(it.input).slice(0, 90),
    detail: (it) => verboseDetail(it, principled[it.id]),
    filters: [
      { label: "failed", test: (it) => it.status === "failed" },
      { label: "kept", test: (it) => !!(it.record && !it.record.dropped) },
      { label: "dropped", test: (it) => !!(it.record && it.record.dropped) },
    ],
    facets: [{ label: "dropped because", value: (it) => (it.record ? it.record.dropped : null) },
      { label: "principle", value: (it) => (principled[it.id] || {}).principles || null }],
  });
  host.appendChild(list.node);
  return list;
};
