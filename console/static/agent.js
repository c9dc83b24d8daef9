// Agent panel (iframe-embeddable): hints, agent-facing alerts and live customer sentiment.
// Resumes after a dropped connection from the last event id: nothing lost, nothing repeated.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const seen = new Set();
let lastEventId = "";
let source = null;
let received = 0, duplicates = 0;

function streamUrl() {
  const query = new URLSearchParams();
  if (token) query.set("token", token);
  if (params.get("agent")) query.set("agent", params.get("agent"));
  if (lastEventId) query.set("last_event_id", lastEventId);
  return "/api/agent/stream?" + query;
}

function counters() {
  const list = document.getElementById("items");
  list.dataset.received = String(received);
  list.dataset.duplicates = String(duplicates);
  document.getElementById("panel-empty").hidden = list.children.length > 0;
}

function accept(event) {
  if (event.lastEventId) lastEventId = event.lastEventId;
  if (seen.has(event.lastEventId)) { duplicates += 1; counters(); return false; }
  seen.add(event.lastEventId);
  received += 1;
  return true;
}

function prepend(node) {
  const list = document.getElementById("items");
  list.prepend(node);
  while (list.children.length > 50) list.lastChild.remove();
  counters();
}

function onHint(event) {
  if (!accept(event)) return;
  const m = JSON.parse(event.data);
  prepend(cs.el("li", { class: "item hint", dataset: { eventId: event.lastEventId, rule: m.rule_id } },
    cs.el("div", { class: "item-text", text: m.text }),
    m.knowledge_title ? cs.el("div", { class: "kb" }, cs.el("strong", { text: m.knowledge_title + ": " }), m.knowledge_snippet) : null,
    cs.el("div", { class: "item-why muted" }, "heard ", cs.el("q", { text: m.matched }), ` · ${m.rule_id}`)));
}

function onAlert(event) {
  if (!accept(event)) return;
  const m = JSON.parse(event.data);
  prepend(cs.el("li", { class: "item alert sev-" + (m.severity || "warning"), dataset: { eventId: event.lastEventId, rule: m.rule_id } },
    cs.el("div", { class: "item-text", text: "⚠ " + m.text }),
    cs.el("div", { class: "item-why muted", text: m.rule_id })));
}

function onSentiment(event) {
  if (!accept(event)) return;
  const m = JSON.parse(event.data);
  const value = document.getElementById("customer-sentiment");
  value.textContent = cs.sentiment(m.compound);
  value.className = "sval " + cs.sentimentClass(m.compound);
  const fill = document.getElementById("gauge-fill");
  fill.className = "gauge-fill " + cs.sentimentClass(m.compound);
  fill.style.width = Math.round((m.compound + 1) * 50) + "%";
}

function onCall(event) {
  if (!accept(event)) return;
  const m = JSON.parse(event.data);
  document.getElementById("current-call").textContent = event.type === "call.started" ? `${m.call_id} · ${m.queue || ""}` : "none";
}

function conn(text, cls) {
  const pill = document.getElementById("conn");
  pill.textContent = text;
  pill.className = "pill " + cls;
}

function connect() {
  source = new EventSource(streamUrl());
  source.addEventListener("hello", () => conn("live", "feed-live"));
  source.addEventListener("reset", () => conn("live (resynced)", "feed-live"));
  source.addEventListener("hint", onHint);
  source.addEventListener("alert", onAlert);
  source.addEventListener("sentiment", onSentiment);
  source.addEventListener("call.started", onCall);
  source.addEventListener("call.ended", onCall);
  source.onerror = () => {
    conn("reconnecting…", "feed-broker_unavailable");
    // Reopen ourselves, with the last id in the URL, so a token-only iframe resumes exactly.
    source.close();
    setTimeout(connect, 1000);
  };
}

// Tests and desktop integrations can drop the connection on purpose (e.g. network change).
window.callscopePanel = {
  drop() { if (source) source.close(); conn("offline", "feed-broker_unavailable"); },
  reconnect() { connect(); },
  state() { return { received, duplicates, lastEventId, ids: [...seen] }; },
};

(async () => {
  if (!token) {
    const me = await cs.signedIn();
    document.getElementById("agent-name").textContent = params.get("agent") || me.agent_id || me.username;
  } else {
    document.getElementById("agent-name").textContent = "";
  }
  connect();
})();
