// History and search: both are plain GETs with bounded parameters; results link to the call view.
"use strict";

const PAGE = 50;
let offset = 0;

function showError(e) {
  const box = document.getElementById("history-error");
  if (!e) { box.hidden = true; return; }
  box.textContent = e.status === 400 && e.data && e.data.problems
    ? "Check the filters: " + e.data.problems.map((p) => `${p.param} ${p.problem}`).join("; ")
    : e.status === 503 ? e.message : "Could not load: " + e.message;
  box.hidden = false;
}

function isoOf(id) {
  const value = document.getElementById(id).value;
  return value ? new Date(value).toISOString() : "";
}

async function loadCalls() {
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  const add = (key, value) => { if (value) params.set(key, value); };
  add("from", isoOf("h-from"));
  add("to", isoOf("h-to"));
  add("agent", document.getElementById("h-agent").value.trim());
  add("queue", document.getElementById("h-queue").value.trim());
  add("end_reason", document.getElementById("h-reason").value.trim());
  add("sentiment_below", document.getElementById("h-sentiment").value);
  add("rule", document.getElementById("h-rule").value.trim());
  if (document.getElementById("h-missed").checked) params.set("compliance_missed", "true");
  try {
    const data = await cs.api("/api/history/calls?" + params);
    showError(null);
    document.getElementById("history-rows").replaceChildren(...data.calls.map((c) =>
      cs.el("tr", { dataset: { callId: c.call_id } },
        cs.el("td", {}, cs.el("a", { href: "/calls/" + encodeURIComponent(c.call_id), text: c.call_id })),
        cs.el("td", { text: cs.time(c.started_at) }),
        cs.el("td", { class: "num", text: c.started_at && c.ended_at ? cs.duration(c.ended_at - c.started_at) : c.ended_at ? "–" : "live" }),
        cs.el("td", { text: c.agent_id || "–" }),
        cs.el("td", { text: c.queue || "–" }),
        cs.el("td", { text: c.direction || "–" }),
        cs.el("td", { text: c.end_reason || "–" }),
        cs.el("td", {}, cs.el("span", { class: "sval " + cs.sentimentClass(c.customer_sentiment), text: cs.sentiment(c.customer_sentiment) })),
        cs.el("td", { class: "num", text: String(c.alerts) }),
        cs.el("td", {}, c.compliance_missed ? cs.el("span", { class: "badge cmp-missed", text: `✗ ${c.compliance_missed} missed` }) : cs.el("span", { class: "muted", text: "–" })))));
    document.getElementById("page").textContent = `${offset + 1}–${offset + data.calls.length}`;
    document.getElementById("prev").disabled = offset === 0;
    document.getElementById("next").disabled = data.calls.length < PAGE;
  } catch (e) { showError(e); }
}

async function search(event) {
  if (event) event.preventDefault();
  const q = document.getElementById("q").value.trim();
  const box = document.getElementById("search-results");
  if (!q) { box.hidden = true; return; }
  const params = new URLSearchParams({ q });
  const leg = document.getElementById("q-leg").value;
  if (leg) params.set("leg", leg);
  history.replaceState(null, "", "?" + params);
  try {
    const data = await cs.api("/api/search?" + params);
    showError(null);
    box.hidden = false;
    document.getElementById("hit-count").textContent = String(data.hits.length);
    document.getElementById("hits").replaceChildren(...(data.hits.length ? data.hits.map((h) =>
      cs.el("li", { class: "hit", dataset: { callId: h.call_id } },
        cs.el("a", { href: `/calls/${encodeURIComponent(h.call_id)}#${h.segment_id}`, class: "hit-call", text: h.call_id }),
        cs.el("span", { class: "muted", text: ` ${cs.time(h.started_at)} · ${h.agent_id || "–"} · ${h.queue || "–"} · ${h.leg} at ${cs.position(h.start_ms)}` }),
        cs.el("div", { class: "snippet" }, ...h.snippet.map((p) => (p.hit ? cs.el("mark", { text: p.text }) : p.text)))))
      : [cs.el("li", { class: "muted", text: "No stored segment matches." })]));
  } catch (e) { showError(e); }
}

(async () => {
  await cs.signedIn();
  const params = new URLSearchParams(location.search);
  if (params.get("q")) {
    document.getElementById("q").value = params.get("q");
    document.getElementById("q-leg").value = params.get("leg") || "";
    search();
  }
  document.getElementById("search-form").addEventListener("submit", search);
  document.getElementById("filter-form").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; loadCalls(); });
  document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); loadCalls(); });
  document.getElementById("next").addEventListener("click", () => { offset += PAGE; loadCalls(); });
  loadCalls();
})();
