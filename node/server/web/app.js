// SPDX-License-Identifier: Apache-2.0
// idnode status page (served at /app.js by node/server/web.c): the identifier lookup through the
// REST API (GET /api/handles/<handle>) and the status view refreshed from GET /status.json.
// Every piece of data goes into the DOM as text (textContent), never as HTML.
"use strict";

const STATUS_EVERY_MS = 2000;
let statusUpdates = 0;

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// ---- lookup ------------------------------------------------------------------------------------

const RC_NAMES = {
  1: "success", 2: "error", 3: "server too busy", 4: "protocol error", 100: "handle not found",
  102: "invalid handle", 200: "values not found", 301: "server not responsible for this prefix",
};

function isUrlType(type) {
  const t = String(type).toUpperCase();
  return t === "URL" || t.startsWith("URL.");
}

function dataText(v) {
  const d = v.data;
  if (d === undefined || d === null) return "";
  if (typeof d !== "object") return String(d);
  const val = d.value;
  switch (d.format) {
  case "string": return String(val);
  case "admin":
    return val ? val.handle + ":" + val.index + " (permissions " + val.permissions + ")" : "";
  case "vlist":
    return Array.isArray(val) ? val.map(r => r.index + ":" + r.handle).join(", ") : "";
  default:
    return (d.format ? d.format + ": " : "") + (typeof val === "string" ? val : JSON.stringify(val));
  }
}

function dataCell(v) {
  const td = el("td", null, "data");
  const text = dataText(v);
  if (isUrlType(v.type) && /^https?:\/\//i.test(text)) {
    const a = el("a", text);
    a.href = text;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    td.appendChild(a);
  } else if (v.data && (v.data.format === "hex" || v.data.format === "base64")) {
    td.appendChild(el("code", text));
  } else {
    td.textContent = text;
  }
  return td;
}

function ttlText(ttl) {
  if (typeof ttl === "number") return ttl + " s";
  return ttl === undefined ? "" : String(ttl); // absolute expiry time
}

function showError(msg) {
  $("lookup-result").hidden = true;
  const e = $("lookup-error");
  e.textContent = msg;
  e.hidden = false;
}

function render(handle, values) {
  $("lookup-error").hidden = true;
  $("result-handle").textContent = handle;
  $("result-count").textContent = values.length + (values.length === 1 ? " value" : " values");
  const body = $("values").tBodies[0];
  body.replaceChildren();
  for (const v of values) {
    const tr = el("tr");
    tr.dataset.index = v.index;
    tr.appendChild(el("td", v.index, "num"));
    tr.appendChild(el("td", v.type));
    tr.appendChild(dataCell(v));
    tr.appendChild(el("td", ttlText(v.ttl), "num"));
    tr.appendChild(el("td", v.timestamp || ""));
    tr.appendChild(el("td", v.permissions || ""));
    body.appendChild(tr);
  }
  $("lookup-result").hidden = false;
}

async function lookup(handle) {
  handle = handle.trim();
  if (!handle) return;
  history.replaceState(null, "", "#h=" + encodeURIComponent(handle));
  $("lookup").dataset.state = "loading";
  try {
    const r = await fetch("/api/handles/" + encodeURIComponent(handle), { cache: "no-store" });
    let j = null;
    try { j = await r.json(); } catch (e) { j = null; }
    if (!j) {
      showError("HTTP " + r.status + ": not a JSON answer");
    } else if (j.responseCode === 1 || j.responseCode === 200) {
      render(j.handle || handle, Array.isArray(j.values) ? j.values : []);
    } else {
      const name = RC_NAMES[j.responseCode] || "response code " + j.responseCode;
      showError(name + (j.message ? ": " + j.message : "") + " (" + handle + ")");
    }
  } catch (e) {
    showError("request failed: " + e);
  }
  $("lookup").dataset.state = "done";
}

// ---- status --------------------------------------------------------------------------------------

function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function pairs(obj) {
  return Object.entries(obj || {}).map(([k, v]) => k + " " + v).join(", ") || "none";
}

function row(body, id, label, value) {
  const tr = el("tr");
  tr.appendChild(el("td", label));
  const td = el("td", value);
  td.id = "st-" + id;
  tr.appendChild(td);
  body.appendChild(tr);
}

function renderStatus(s) {
  const n = s.node || {};
  $("node-version").textContent = "version " + n.version + ", " + n.workers + " worker(s)";
  $("node-listen").textContent = "listen " + (n.listen || []).join(" ") + "; http " +
    (n.http || []).join(" ");
  const body = $("status-table").tBodies[0];
  body.replaceChildren();
  const rq = s.requests || {};
  row(body, "uptime", "Uptime", duration(n.uptime_seconds || 0) + " (since " + n.start_time + ")");
  row(body, "requests", "Requests answered", rq.total);
  row(body, "by-transport", "by transport", pairs(rq.by_transport));
  row(body, "by-rcode", "by response code", pairs(rq.by_rcode));
  row(body, "dropped", "Requests dropped", rq.dropped);
  const c = s.response_cache || {};
  const lookups = (c.hits || 0) + (c.misses || 0);
  row(body, "cache", "Response cache", c.hits + " hits, " + c.misses + " misses" +
    (lookups ? " (" + (100 * c.hits / lookups).toFixed(1) + " % hits)" : "") + ", " +
    c.entries + " entries, " + bytes(c.bytes || 0) + " of " + bytes(c.limit_bytes || 0));
  if (s.resolver_cache) {
    const r = s.resolver_cache;
    row(body, "resolver-cache", "Resolver cache", r.hits + " hits, " + r.misses + " misses, " +
      r.stale_served + " stale served, " + r.entries + " entries, " + bytes(r.bytes || 0) +
      " of " + bytes(r.limit_bytes || 0));
  }
  const cn = s.connections || {};
  row(body, "connections", "Connections", cn.open + " open, " + cn.accepted + " accepted, " +
    cn.refused + " refused");
  if (s.udp_rate_limit) {
    const u = s.udp_rate_limit;
    row(body, "rrl", "UDP rate limiting", u.limited + " limited (" + u.slipped + " slipped, " +
      u.dropped + " dropped), " + u.redirected + " redirected to TCP");
  }
  if (s.writer) {
    const w = s.writer;
    row(body, "writer", "Writes", w.applied + " applied, " + w.refused + " refused, " + w.failed +
      " failed in " + w.batches + " commits; " + w.queue_depth + " queued");
  }
  const st = s.store || {};
  row(body, "store", "Store", st.handles + " handles, " + st.homed_prefixes + " homed prefixes, map " +
    bytes(st.map_used_bytes || 0) + " of " + bytes(st.map_size_bytes || 0));
  if (s.statistics) {
    row(body, "statistics", "Statistics", s.statistics.flushes + " flushes, last " +
      (s.statistics.last_flush || "not yet"));
  }
  const ul = $("prefixes");
  ul.replaceChildren();
  for (const p of s.prefixes || []) ul.appendChild(el("li", p));
  if (!(s.prefixes || []).length) ul.appendChild(el("li", "none", "muted"));
  const mods = $("modules");
  mods.replaceChildren();
  for (const [name, state] of Object.entries(s.modules || {})) {
    if (!state || !Object.keys(state).length) continue;
    mods.appendChild(el("h2", name));
    const t = el("table");
    const tb = el("tbody");
    for (const [k, v] of Object.entries(state))
      row(tb, name + "-" + k, k, typeof v === "object" ? JSON.stringify(v) : v);
    t.appendChild(tb);
    mods.appendChild(t);
  }
  statusUpdates++;
  const up = $("status-updated");
  up.dataset.updates = statusUpdates;
  up.textContent = "updated " + new Date().toLocaleTimeString();
}

async function refreshStatus() {
  try {
    const r = await fetch("/status.json", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    renderStatus(await r.json());
    $("status-error").hidden = true;
  } catch (e) {
    $("status-error").textContent = "status unavailable: " + e.message;
    $("status-error").hidden = false;
  }
  setTimeout(refreshStatus, STATUS_EVERY_MS);
}

// ---- start ---------------------------------------------------------------------------------------

$("lookup-form").addEventListener("submit", ev => {
  ev.preventDefault();
  lookup($("handle").value);
});

function fromFragment() {
  const m = /^#h=(.+)$/.exec(location.hash);
  if (m) {
    const h = decodeURIComponent(m[1]);
    $("handle").value = h;
    lookup(h);
  }
}
window.addEventListener("hashchange", fromFragment);
fromFragment();
refreshStatus();
