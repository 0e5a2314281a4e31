// SELF-ALIGN stage 2: internal thoughts, principles cited, the answer kept or dropped (and why);
// how often each principle was cited, over all answers and over those kept.

function keptBadge(rec) {
  return rec.dropped ? badge("dropped: " + rec.dropped, "bad") : badge("kept", "ok");
}

VIEWS["principles"] = function (run, index, host) {
  const items = run.view.items;
  const cited = {}, citedKept = {}, dropped = {};
  for (const it of items) {
    const rec = it.record;
    if (!rec) continue;
    for (const p of rec.principles) {
      cited[p] = (cited[p] || 0) + 1;
      if (!rec.dropped) citedKept[p] = (citedKept[p] || 0) + 1;
    }
    if (rec.dropped) dropped[rec.dropped] = (dropped[rec.dropped] || 0) + 1;
  }
  const kept = items.filter((it) => it.record && !it.record.dropped).length;
  host.appendChild(h("div", { class: "card" },
    h("p", {}, kept + " of " + items.length + " answers kept as training data (engraving)"),
    h("h3", {}, "how often each principle was cited (all answers)"), countBars(cited),
    h("h3", {}, "cited in the answers kept"), countBars(citedKept),
    h("h3", {}, "answers dropped, by reason"), countBars(dropped)));
  const list = itemList(index, items, {
    text: (it) => [lastUser(it.input), it.error || "", it.record ? [it.record.thoughts, it.record.answer, it.record.text || "", it.record.principles.join(" ")].join("\n") : ""].join("\n"),
    title: (it) => (it.record && it.record.dropped ? "\u2717 " : "") + lastUser(it.input).slice(0, 90),
    detail: (it) => h("div", {},
      h("div", {}, keptBadge(it.record), it.record.principles.map((p) => badge(p))),
      textBlock("question", lastUser(it.input)),
      textBlock("internal thoughts", it.record.thoughts),
      textBlock("answer", it.record.answer),
      it.record.text !== undefined ? textBlock("the continuation as written", it.record.text) : null),
    filters: [
      { label: "failed", test: (it) => it.status === "failed" },
      { label: "kept", test: (it) => !!(it.record && !it.record.dropped) },
      { label: "dropped", test: (it) => !!(it.record && it.record.dropped) },
    ],
    facets: [{ label: "principle", value: (it) => (it.record ? it.record.principles : null) },
      { label: "dropped because", value: (it) => (it.record ? it.record.dropped : null) }],
  });
  host.appendChild(list.node);
  return list;
};
