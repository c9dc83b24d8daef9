// Shared helpers of the console pages: API calls with the CSRF header, DOM building, formatting.
"use strict";

const cs = {
  me: null,
  clockSkewS: 0, // server time minus browser time, from the streams' "now"

  async api(path, options = {}) {
    const headers = { Accept: "application/json" };
    const init = { method: options.method || "GET", credentials: "same-origin", headers };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    if (init.method !== "GET" && cs.me) headers["X-CSRF-Token"] = cs.me.csrf;
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (response.status === 401 && !options.noRedirect) {
      cs.toLogin();
      throw new Error("unauthenticated");
    }
    if (!response.ok) {
      const err = new Error((data && (data.message || data.error)) || response.statusText);
      err.status = response.status;
      err.data = data;
      throw err;
    }
    return data;
  },

  toLogin() {
    const next = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(next));
  },

  async signedIn() {
    cs.me = await cs.api("/api/me");
    cs.header();
    cs.feed(cs.me.feed);
    return cs.me;
  },

  header() {
    const who = document.getElementById("who");
    if (who && cs.me) {
      who.textContent = `${cs.me.username} · ${cs.me.role}`;
    }
    const out = document.getElementById("signout");
    if (out) {
      out.addEventListener("click", async () => {
        await cs.api("/api/logout", { method: "POST", body: {} });
        location.assign("/login");
      });
    }
    for (const link of document.querySelectorAll("[data-role]")) {
      const roles = link.dataset.role.split(" ");
      link.hidden = !cs.me || !roles.includes(cs.me.role);
    }
  },

  feed(status) {
    const pill = document.getElementById("feed");
    if (!pill || !status) return;
    const labels = {
      live: "live",
      starting: "connecting…",
      waiting_for_topics: "waiting for the pipeline",
      broker_unavailable: "broker unavailable: reconnecting",
      disconnected: "console unreachable: reconnecting",
    };
    pill.textContent = labels[status.state] || status.state;
    pill.className = "pill feed-" + status.state;
  },

  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  svg(tag, attrs = {}) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  },

  now() { return Date.now() / 1000 + cs.clockSkewS; },

  duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  },

  position(ms) { return ms === null || ms === undefined ? "" : cs.duration(ms / 1000); },

  sentimentClass(value) {
    if (value === null || value === undefined) return "snt-none";
    if (value <= -0.5) return "snt-vneg";
    if (value <= -0.05) return "snt-neg";
    if (value < 0.05) return "snt-neu";
    if (value < 0.5) return "snt-pos";
    return "snt-vpos";
  },

  sentiment(value) {
    if (value === null || value === undefined) return "–";
    return (value > 0 ? "+" : "") + value.toFixed(2);
  },

  trendArrow(trend) {
    if (trend === null || trend === undefined) return "";
    if (trend > 0.1) return "▲";
    if (trend < -0.1) return "▼";
    return "▶";
  },

  time(epoch) {
    if (!epoch) return "–";
    return new Date(epoch * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
  },
};
