// SELF-ALIGN stage 1: the prompts kept (red-teaming questions by type, self-instruct
// instructions), what was dropped by reason, and every generation call as the model wrote it.

VIEWS["self-instruct"] = function (run, index, host) {
  const view = run.view;
  const prompts = view.prompts || [];
  const redTeam = (view.red_team || {}).per_type || {};
  const plain = prompts.filter((p) => p.source !== "red-team").length;
  host.appendChild(h("div", { class: "card" },
    h("p", {}, prompts.length + " prompts kept: " + (prompts.length - plain) + " red-teaming questions, " + plain + " self-instruct instructions"),
    h("h3", {}, "red-teaming questions kept, per type"), countBars(redTeam),
    h("h3", {}, "dropped, by reason"), countBars(view.dropped || {})));
  const kept = prompts.map((p, k) => ({ id: "prompt-" + String(k + 1).padStart(5, "0"), status: "done", kept: p, record: p }));
  const calls = view.items.map((it) => ({ ...it, call: true }));
  const list = itemList(index, [...kept, ...calls], {
    text: (it) => (it.kept ? [it.kept.prompt, it.kept.type || "", it.kept.topic || ""] : [it.error || "", it.record ? it.record.text : ""]).join("\n"),
    title: (it) => (it.kept ? it.kept.prompt : "call: " + (it.record ? it.record.kind : (it.error || ""))).slice(0, 90),
    detail: (it) => it.kept
      ? h("div", {}, badge(it.kept.source), it.kept.type ? badge(it.kept.type) : null, it.kept.topic ? badge("topic: " + it.kept.topic) : null,
        textBlock("prompt", it.kept.prompt))
      : h("div", {}, badge(it.record.kind), badge("finish: " + it.record.finish_reason),
        it.record.hints ? textBlock("hints (topics)", it.record.hints.join("\n")) : null,
        textBlock("prompt", lastUser(it.input)), textBlock("what the model wrote", it.record.text)),
    filters: [{ label: "failed", test: (it) => it.status === "failed" }],
    facets: [{ label: "what", value: (it) => (it.kept ? "kept prompt: " + it.kept.source : "call: " + (it.record ? it.record.kind : "failed")) },
      { label: "type", value: (it) => (it.kept ? it.kept.type : null) }],
  });
  host.appendChild(list.node);
  return list;
};
