// Critique-revise: principle, answer, critique, revision (differences marked); principles cited.

VIEWS["critique-revise"] = function (run, index, host) {
  const items = run.view.items;
  const counts = {};
  for (const it of items) if (it.record) counts[it.record.principle] = (counts[it.record.principle] || 0) + 1;
  const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([p, n]) => ({ label: p, value: n }));
  host.appendChild(h("div", { class: "card" }, h("h3", {}, "how often each principle was cited"),
    rows.length ? barChart(rows, { width: 720 }) : h("p", { class: "muted" }, "no records")));
  const list = itemList(index, items, {
    text: (it) => [lastUser(it.input), it.error || "", it.record ? [it.record.principle, it.record.initial, it.record.critique, it.record.revision].join("\n") : ""].join("\n"),
    title: (it) => lastUser(it.input).slice(0, 90),
    detail: (it) => h("div", {},
      textBlock("instruction", lastUser(it.input)),
      textBlock("principle", it.record.principle),
      textBlock("critique", it.record.critique),
      diffView("answer", it.record.initial, "revision", it.record.revision)),
    filters: [
      { label: "failed", test: (it) => it.status === "failed" },
      { label: "unchanged by the revision", test: (it) => !!(it.record && it.record.initial.trim() === it.record.revision.trim()) },
    ],
    facets: [{ label: "principle", value: (it) => (it.record ? it.record.principle : null) }],
  });
  host.appendChild(list.node);
  return list;
};
