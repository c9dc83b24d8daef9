// Call view: live over SSE while the call is active, from the store once it has ended.
"use strict";

const callId = decodeURIComponent(location.pathname.split("/").pop());
const lines = new Map(); // segment_id -> line
const marks = new Map(); // event_id -> mark
let summary = null;

function renderHead(call, live) {
  summary = call;
  document.getElementById("call-id").textContent = call.call_id;
  const status = document.getElementById("call-status");
  status.textContent = call.ended ? "ended" + (call.end_reason ? " · " + call.end_reason : "") : "live";
  status.className = "pill " + (call.ended ? "status-ended" : "status-live");
  const meta = document.getElementById("call-meta");
  const item = (k, v, cls) => [cs.el("dt", { text: k }), cs.el("dd", { text: v || "–", class: cls })];
  meta.replaceChildren(
    ...item("Agent", call.agent_id),
    ...item("Queue", call.queue),
    ...item("Direction", call.direction),
    ...item("Started", cs.time(call.started_at)),
    ...item("Duration", durationOf(call), "duration"),
  );
  document.getElementById("listen-box").hidden = !(live && !call.ended && cs.me && ["admin", "supervisor"].includes(cs.me.role));
}

function durationOf(call) {
  if (!call.started_at) return "–";
  const end = call.ended_at || cs.now();
  return cs.duration(end - call.started_at);
}

function renderLines() {
  const box = document.getElementById("lines");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const ordered = [...lines.values()].sort((a, b) => a.start_ms - b.start_ms || a.leg.localeCompare(b.leg));
  box.replaceChildren(...ordered.map((line) =>
    cs.el("div", { class: `line leg-${line.leg} ${line.final ? "final" : "partial"}`, id: line.segment_id, dataset: { segmentId: line.segment_id, final: String(line.final) } },
      cs.el("span", { class: "at", text: cs.position(line.start_ms) }),
      cs.el("span", { class: "who", text: line.leg }),
      cs.el("span", { class: "text", text: line.text }),
      line.sentiment === null || line.sentiment === undefined ? null
        : cs.el("span", { class: "chip " + cs.sentimentClass(line.sentiment), text: cs.sentiment(line.sentiment) }))));
  if (atBottom) box.scrollTop = box.scrollHeight;
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target) { target.classList.add("target"); }
  }
}

function renderMarks() {
  const ordered = [...marks.values()].sort((a, b) => b.emitted_at - a.emitted_at);
  document.getElementById("marks-count").textContent = String(ordered.length);
  document.getElementById("marks").replaceChildren(...ordered.map((m) =>
    cs.el("li", { class: `mark kind-${m.kind} sev-${m.severity || "hint"}`, dataset: { eventId: m.event_id, rule: m.rule_id } },
      cs.el("div", { class: "mark-head" },
        cs.el("span", { class: "badge " + (m.kind === "alert" ? "sev-" + (m.severity || "warning") : "kind-hint"), text: m.kind === "alert" ? m.severity : "hint" }),
        cs.el("span", { class: "at", text: cs.position(m.at_ms) }),
        cs.el("code", { class: "rule", title: "rule id @ rule-set version", text: `${m.rule_id} @ ${m.rule_version}` }),
        m.before_turn_end ? cs.el("span", { class: "badge early", title: "fired on a partial, before the speaker finished the turn", text: "before turn end" }) : null),
      cs.el("div", { class: "mark-text", text: m.text }),
      cs.el("div", { class: "mark-why" }, `${m.leg} said `, cs.el("q", { class: "matched", text: m.matched }), m.matched_by ? ` (${m.matched_by})` : ""),
      m.knowledge_title ? cs.el("div", { class: "kb" }, cs.el("strong", { text: m.knowledge_title + ": " }), m.knowledge_snippet) : null)));
}

function renderChart(series) {
  const svg = document.getElementById("chart");
  svg.replaceChildren();
  const all = [...(series.agent || []), ...(series.customer || [])];
  const maxMs = Math.max(60000, ...all.map((p) => p[0]));
  const x = (ms) => (ms / maxMs) * 400, y = (v) => 60 - v * 55;
  svg.append(cs.svg("line", { x1: 0, x2: 400, y1: 60, y2: 60, class: "axis" }));
  svg.append(cs.svg("line", { x1: 0, x2: 400, y1: y(0.5), y2: y(0.5), class: "grid" }));
  svg.append(cs.svg("line", { x1: 0, x2: 400, y1: y(-0.5), y2: y(-0.5), class: "grid" }));
  for (const leg of ["agent", "customer"]) {
    const points = series[leg] || [];
    if (!points.length) continue;
    svg.append(cs.svg("polyline", { class: "series leg-" + leg, points: points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") }));
    for (const p of points) svg.append(cs.svg("circle", { class: "dot leg-" + leg, cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5 }));
  }
}

function renderCompliance(compliance) {
  document.getElementById("cmp-version").textContent = compliance.rule_version ? "rules " + compliance.rule_version : "";
  const icons = { met: "✓", missed: "✗", pending: "…", not_applicable: "–" };
  const list = document.getElementById("compliance");
  list.replaceChildren(...(compliance.steps.length ? compliance.steps.map((s) =>
    cs.el("li", { class: "cmp-" + s.status, dataset: { item: s.item_id } },
      cs.el("span", { class: "icon", text: icons[s.status] || "?" }),
      cs.el("span", { class: "name", text: s.item_id.replaceAll("_", " ") }),
      cs.el("span", { class: "muted", text: s.status.replace("_", " ") + (s.at_ms !== null && s.at_ms !== undefined ? " at " + cs.position(s.at_ms) : "") })))
    : [cs.el("li", { class: "muted", text: "no checklist for this call" })]));
}

function renderMetrics(m) {
  const table = document.getElementById("metrics");
  if (!m) { table.replaceChildren(cs.el("tr", {}, cs.el("td", { class: "muted", text: "not measured yet" }))); return; }
  const pct = (part) => (m.elapsed_ms ? Math.round((100 * part) / m.elapsed_ms) + "%" : "–");
  const row = (k, ...v) => cs.el("tr", {}, cs.el("th", { text: k }), ...v.map((x) => cs.el("td", { text: x })));
  table.replaceChildren(
    cs.el("tr", {}, cs.el("th"), cs.el("th", { text: "agent" }), cs.el("th", { text: "customer" })),
    row("Talk", `${cs.duration(m.agent.talk_ms / 1000)} (${pct(m.agent.talk_ms)})`, `${cs.duration(m.customer.talk_ms / 1000)} (${pct(m.customer.talk_ms)})`),
    row("Pace (wpm)", m.agent.words_per_minute ? Math.round(m.agent.words_per_minute) : "–", m.customer.words_per_minute ? Math.round(m.customer.words_per_minute) : "–"),
    row("Interruptions", String(m.agent.interruptions), String(m.customer.interruptions)),
    row("Longest turn", cs.duration(m.agent.longest_turn_ms / 1000), cs.duration(m.customer.longest_turn_ms / 1000)),
    row("Silence", `${cs.duration(m.non_talk_ms / 1000)} (longest ${cs.duration(m.longest_silence_ms / 1000)})`, ""),
    row("Overtalk", cs.duration(m.overtalk_ms / 1000), ""),
  );
}

function renderLatency(latency) {
  const names = { audio_to_partial: "audio → partial", speech_end_to_final: "speech end → final", final_to_hint: "final → hint" };
  const table = document.getElementById("latency");
  const stages = Object.keys(names).filter((k) => latency && latency[k]);
  if (!stages.length) { table.replaceChildren(cs.el("tr", {}, cs.el("td", { class: "muted", text: "live calls only" }))); return; }
  const ms = (v) => (v === null || v === undefined ? "–" : Math.round(v * 1000) + " ms");
  table.replaceChildren(
    cs.el("tr", {}, cs.el("th"), cs.el("th", { text: "p50" }), cs.el("th", { text: "max" }), cs.el("th", { text: "n" })),
    ...stages.map((k) => cs.el("tr", { dataset: { stage: k } }, cs.el("th", { text: names[k] }),
      cs.el("td", { text: ms(latency[k].p50_s) }), cs.el("td", { text: ms(latency[k].max_s) }), cs.el("td", { text: String(latency[k].count) }))));
}

function apply(detail, live) {
  for (const line of detail.lines) lines.set(line.segment_id, line);
  for (const mark of detail.marks) marks.set(mark.event_id, mark);
  renderHead(detail.call, live);
  renderLines();
  renderMarks();
  renderChart(detail.sentiment_series);
  const last = (leg) => { const s = detail.call.sentiment; return s ? cs.sentiment(s[leg]) : ""; };
  document.getElementById("now-agent").textContent = last("agent");
  document.getElementById("now-customer").textContent = last("customer");
  renderCompliance(detail.compliance);
  renderMetrics(detail.metrics);
  renderLatency(detail.latency);
}

async function loadStored() {
  try {
    const detail = await cs.api("/api/calls/" + encodeURIComponent(callId));
    lines.clear(); marks.clear();
    apply(detail, false);
  } catch (e) {
    const box = document.getElementById("call-error");
    box.textContent = e.status === 403 ? "You may not open this call." : e.status === 404 ? "No such call." : "Could not load the call: " + e.message;
    box.hidden = false;
    document.getElementById("call-status").textContent = e.status === 403 ? "forbidden" : "unavailable";
  }
}

async function start() {
  await cs.signedIn();
  document.getElementById("call-id").textContent = callId;
  let live;
  try {
    live = await cs.api("/api/live/calls/" + encodeURIComponent(callId));
  } catch (e) {
    if (e.status === 404) return loadStored();  // ended and gone from memory: the store has it
    const box = document.getElementById("call-error");
    box.textContent = e.status === 403 ? "You may not open this call." : "Could not load the call: " + e.message;
    box.hidden = false;
    document.getElementById("call-status").textContent = e.status === 403 ? "forbidden" : "unavailable";
    return;
  }
  cs.feed(live.feed);
  apply(live, true);
  const source = new EventSource("/api/live/calls/" + encodeURIComponent(callId) + "/stream");
  source.addEventListener("snapshot", (event) => apply(JSON.parse(event.data), true));
  source.addEventListener("update", (event) => { apply(JSON.parse(event.data), true); cs.feed({ state: "live" }); });
  source.addEventListener("gone", () => { source.close(); loadStored(); });
  source.onerror = () => cs.feed({ state: "disconnected" });
  setInterval(() => {
    const cell = document.querySelector("#call-meta dd.duration");
    if (cell && summary) cell.textContent = durationOf(summary);
  }, 1000);
  const button = document.getElementById("listen");
  let listener = null;
  button.addEventListener("click", () => {
    if (listener) { listener.stop(); listener = null; button.textContent = "▶ Listen in"; return; }
    listener = new LiveListener(callId, document.getElementById("listen-status"));
    listener.start();
    button.textContent = "■ Stop listening";
  });
}

start();
