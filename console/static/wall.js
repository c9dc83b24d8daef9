// Live wall: a snapshot then updates over SSE; filtering and sorting happen here, in the browser.
"use strict";

const calls = new Map(); // call_id -> row
const filters = { queue: "", agent: "", alert: false, below: null, sort: "severity" };
const SEVERITY = { critical: 3, warning: 2, info: 1 };

function visible(row) {
  if (filters.queue && row.queue !== filters.queue) return false;
  if (filters.agent && !row.agent_id.toLowerCase().includes(filters.agent.toLowerCase())) return false;
  if (filters.alert && row.alerts === 0) return false;
  if (filters.below !== null) {
    const now = row.sentiment.customer;
    if (now === null || now >= filters.below) return false;
  }
  return true;
}

function sorted(rows) {
  const by = {
    severity: (a, b) => (SEVERITY[b.worst_severity] || 0) - (SEVERITY[a.worst_severity] || 0) || b.alerts - a.alerts || a.started_at - b.started_at,
    duration: (a, b) => a.started_at - b.started_at,
    sentiment: (a, b) => (a.sentiment.customer ?? 2) - (b.sentiment.customer ?? 2),
    alerts: (a, b) => b.alerts - a.alerts,
    agent: (a, b) => a.agent_id.localeCompare(b.agent_id),
    queue: (a, b) => a.queue.localeCompare(b.queue),
  }[filters.sort];
  return rows.sort(by);
}

function sentimentCell(value, trend) {
  const pct = value === null ? 0 : Math.round(Math.abs(value) * 50);
  const bar = cs.el("span", { class: "sbar" }, cs.el("span", { class: "sfill " + cs.sentimentClass(value) }));
  const fill = bar.firstChild;
  fill.style.width = pct + "%";
  fill.style.marginLeft = value !== null && value < 0 ? (50 - pct) + "%" : "50%";
  return cs.el("td", {}, cs.el("div", { class: "snt" },
    cs.el("span", { class: "sval " + cs.sentimentClass(value), text: cs.sentiment(value) }),
    bar,
    cs.el("span", { class: "trend", title: trend === null ? "" : "trend " + trend.toFixed(2), text: cs.trendArrow(trend) })));
}

function complianceBadge(state) {
  const labels = { met: "✓ met", missed: "✗ missed", pending: "… pending", none: "–" };
  return cs.el("span", { class: "badge cmp-" + state, text: labels[state] || state });
}

function rowElement(row) {
  const alerts = row.alerts
    ? cs.el("span", { class: "badge sev-" + (row.worst_severity || "info"), text: String(row.alerts) })
    : cs.el("span", { class: "muted", text: "0" });
  return cs.el("tr", { class: row.worst_severity ? "row-" + row.worst_severity : "", dataset: { callId: row.call_id } },
    cs.el("td", {}, cs.el("a", { href: "/calls/" + encodeURIComponent(row.call_id), text: row.call_id })),
    cs.el("td", { text: row.agent_id || "–" }),
    cs.el("td", { text: row.queue || "–" }),
    cs.el("td", { class: "dir", title: row.direction, text: row.direction === "outbound" ? "↗ out" : "↙ in" }),
    cs.el("td", { class: "num duration", dataset: { started: row.started_at }, text: cs.duration(cs.now() - row.started_at) }),
    sentimentCell(row.sentiment.customer, row.trend.customer),
    sentimentCell(row.sentiment.agent, row.trend.agent),
    cs.el("td", { class: "num" }, alerts),
    cs.el("td", {}, complianceBadge(row.compliance)));
}

function render() {
  const rows = sorted([...calls.values()].filter(visible));
  const body = document.getElementById("rows");
  body.replaceChildren(...rows.map(rowElement));
  document.getElementById("count").textContent = String(rows.length);
  document.getElementById("empty").hidden = rows.length > 0;
  const queues = [...new Set([...calls.values()].map((r) => r.queue).filter(Boolean))].sort();
  const select = document.getElementById("f-queue");
  const current = select.value;
  select.replaceChildren(cs.el("option", { value: "", text: "all" }), ...queues.map((q) => cs.el("option", { value: q, text: q })));
  select.value = queues.includes(current) ? current : "";
  document.getElementById("agents").replaceChildren(
    ...[...new Set([...calls.values()].map((r) => r.agent_id))].sort().map((a) => cs.el("option", { value: a })));
}

function tick() {
  for (const cell of document.querySelectorAll("td.duration")) {
    cell.textContent = cs.duration(cs.now() - Number(cell.dataset.started));
  }
}

function readFilters() {
  filters.queue = document.getElementById("f-queue").value;
  filters.agent = document.getElementById("f-agent").value.trim();
  filters.alert = document.getElementById("f-alert").checked;
  const below = document.getElementById("f-sentiment").value;
  filters.below = below === "" ? null : Number(below);
  filters.sort = document.getElementById("f-sort").value;
  const params = new URLSearchParams();
  if (filters.queue) params.set("queue", filters.queue);
  if (filters.agent) params.set("agent", filters.agent);
  if (filters.alert) params.set("has_alert", "true");
  if (filters.below !== null) params.set("sentiment_below", String(filters.below));
  if (filters.sort !== "severity") params.set("sort", filters.sort);
  history.replaceState(null, "", params.toString() ? "?" + params : location.pathname);
  render();
}

function restoreFilters() {
  const params = new URLSearchParams(location.search);
  document.getElementById("f-agent").value = params.get("agent") || "";
  document.getElementById("f-alert").checked = params.get("has_alert") === "true";
  document.getElementById("f-sentiment").value = params.get("sentiment_below") || "";
  document.getElementById("f-sort").value = params.get("sort") || "severity";
  filters.queue = params.get("queue") || "";
  const select = document.getElementById("f-queue");
  if (filters.queue) select.append(cs.el("option", { value: filters.queue, text: filters.queue }));
  select.value = filters.queue;
}

function connect() {
  const source = new EventSource("/api/live/wall/stream");
  source.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    cs.clockSkewS = data.now - Date.now() / 1000;
    calls.clear();
    for (const row of data.calls) calls.set(row.call_id, row);
    cs.feed(data.feed);
    readFilters();
  });
  source.addEventListener("update", (event) => {
    const data = JSON.parse(event.data);
    for (const row of data.calls) calls.set(row.call_id, row);
    for (const id of data.removed) calls.delete(id);
    if (data.feed) cs.feed(data.feed);
    render();
  });
  source.onerror = async () => {
    cs.feed({ state: "disconnected" });
    if (source.readyState === EventSource.CLOSED) {
      // A closed stream is usually an expired session: check, then reopen.
      try { await cs.api("/api/me"); setTimeout(connect, 1000); } catch (e) { /* redirected */ }
    }
  };
}

(async () => {
  await cs.signedIn();
  restoreFilters();
  for (const id of ["f-queue", "f-alert", "f-sort"]) document.getElementById(id).addEventListener("change", readFilters);
  for (const id of ["f-agent", "f-sentiment"]) document.getElementById(id).addEventListener("input", readFilters);
  connect();
  setInterval(tick, 1000);
})();
