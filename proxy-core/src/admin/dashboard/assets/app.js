// Weir dashboard: draws the state document of /dashboard/events.
// Plain DOM, no framework; every value is set as text, never as HTML.
"use strict";

const HISTORY = 180; // points per sparkline (three minutes at one a second)
const history = new Map(); // key -> array of figures
let state = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

function remember(key, figures) {
  let list = history.get(key);
  if (!list) history.set(key, (list = []));
  list.push(figures || {});
  if (list.length > HISTORY) list.shift();
  return list;
}

function spark(list, field, bad) {
  const w = 64, hgt = 22;
  const values = list.map((p) => (typeof p[field] === "number" ? p[field] : null));
  const max = Math.max(1e-9, ...values.filter((v) => v !== null));
  // A young page spreads its few points; the line then fills up to HISTORY.
  const step = w / Math.max(1, Math.max(20, values.length) - 1);
  const offset = w - step * (values.length - 1);
  let d = "";
  values.forEach((v, i) => {
    if (v === null) return;
    const x = (offset + i * step).toFixed(1);
    const y = (hgt - 1 - (v / max) * (hgt - 3)).toFixed(1);
    d += (d ? "L" : "M") + x + " " + y;
  });
  const s = svg("svg", { class: "spark" + (bad ? " bad" : ""), viewBox: `0 0 ${w} ${hgt}` });
  s.append(svg("path", { d: d || "M0 0" }));
  return s;
}

function fmt(v, digits, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return v.toFixed(digits) + (unit || "");
}

function metricLink(name) {
  const docs = state && state.links && state.links.metrics_docs;
  const href = docs ? docs : "/metrics";
  return h("a", { class: "metric", href, title: `Prometheus: ${name}`, target: "_blank", rel: "noreferrer" }, name);
}

// One figure: number and sparkline (the column header names the metric).
function figure(list, field, value, opts) {
  const o = opts || {};
  return h("span", { class: "fig", "data-field": field },
    h("span", { class: "num" }, value),
    spark(list, field, o.bad));
}

// A header row; a column given as [label, metric] links the Prometheus name.
function head(columns) {
  return h("thead", {}, h("tr", {}, columns.map((c) => Array.isArray(c)
    ? h("th", {}, c[0], h("br"), metricLink(c[1])) : h("th", {}, c))));
}

function traffic(list, t) {
  const f = t || {};
  const err = f.error_rate;
  return [
    h("td", {}, figure(list, "rps", fmt(f.rps, 1, "/s"))),
    h("td", {}, figure(list, "error_rate", err === null || err === undefined ? "–" : fmt(err * 100, 1, "%"), { bad: err > 0 })),
    h("td", {}, figure(list, "p50_ms", fmt(f.p50_ms, 1, " ms")),
      h("br"), figure(list, "p99_ms", fmt(f.p99_ms, 1, " ms"))),
  ];
}

function figures(t) {
  const f = t || {};
  const out = { rps: f.rps, error_rate: f.error_rate, p50_ms: f.p50_ms, p99_ms: f.p99_ms };
  for (const [k, v] of Object.entries(f.per_second || {})) out[k] = v;
  return out;
}

function traceLink(slow) {
  if (!slow) return "–";
  const label = `${fmt(slow.latency_ms, 1, " ms")} (${slow.status})`;
  const jaeger = state.links && state.links.jaeger;
  if (slow.trace_id && jaeger) {
    return h("a", { href: `${jaeger}/trace/${slow.trace_id}`, target: "_blank", rel: "noreferrer",
      title: `trace ${slow.trace_id}`, "data-trace": slow.trace_id }, label);
  }
  return h("span", { title: slow.trace_id ? `trace ${slow.trace_id}` : `request ${slow.request_id || "?"}`,
    "data-trace": slow.trace_id || "" }, label);
}

function time(ms) {
  return ms ? new Date(ms).toLocaleString() : "–";
}

function badge(text, kind, attrs) {
  return h("span", Object.assign({ class: "badge " + (kind || "") }, attrs || {}), text);
}

function section(title, ...body) {
  return h("section", { "data-section": title.toLowerCase() }, h("h2", {}, title), ...body);
}

// ---------------------------------------------------------------- gateway

function renderGateway(s) {
  const out = [];
  const c = s.config || {};
  const reload = c.last_reload || {};
  out.push(section("Configuration",
    h("div", { class: "kv" },
      h("div", {}, h("span", {}, "generation"), h("b", { "data-config-generation": c.generation }, c.generation)),
      h("div", {}, h("span", {}, "digest"), h("code", {}, c.digest || "–")),
      h("div", {}, h("span", {}, "loaded"), time(c.loaded_at_unix_ms)),
      h("div", {}, h("span", {}, "reloads"), `${c.reloads_ok || 0} ok, ${c.reloads_failed || 0} refused`),
      h("div", {}, h("span", {}, "last reload"), reload.at_unix_ms ? (reload.ok ? badge("applied", "ok") : badge("refused", "bad")) : "–"),
      h("div", {}, h("span", {}, "connections"), s.connections ?? "–", " ", metricLink("weir_active_connections")),
      h("div", { "data-identity": s.identity ? "set" : "none" }, h("span", {}, "identity"),
        !s.identity ? h("span", { class: "muted" }, "none") : String(s.identity.spiffe_id || "waiting for a certificate"),
        s.identity && s.identity.expires_in_seconds != null
          ? h("span", { class: "muted" }, ` (expires in ${Math.floor(s.identity.expires_in_seconds / 3600)} h)`) : null)),
    c.last_error ? h("p", { class: "error", "data-last-error": "" },
      `Last reload error (${time(c.last_error.at_unix_ms)}): ${c.last_error.message}`) : null));

  const routes = s.routes || [];
  const rows = routes.map((r) => {
    const list = remember("route:" + r.name, figures(r.traffic));
    const m = r.match || {};
    const target = r.upstream ? r.upstream
      : (r.split || []).map((x) => `${x.upstream} ${x.weight}`).join(" / ");
    const dep = r.deprecated;
    const p = r.policies || {};
    return h("tr", { "data-route": r.name },
      h("td", {}, h("b", {}, r.name)),
      h("td", { class: "wrap" }, [m.hosts && m.hosts.length ? m.hosts.join(",") + " " : "",
        m.path || "/", m.path_kind ? ` (${m.path_kind})` : "",
        m.methods && m.methods.length ? " " + m.methods.join(",") : "",
        m.headers && m.headers.length ? " [" + m.headers.join(", ") + "]" : ""].join("")),
      h("td", {}, r.version ? "v" + r.version : "any"),
      h("td", {}, dep ? badge(dep.sunset ? `sunset ${dep.sunset}` : "deprecated", "warn",
        { title: JSON.stringify(dep) }) : ""),
      h("td", { "data-upstream": target }, target),
      h("td", { class: "wrap" }, [p.auth, p.rate_limit && p.rate_limit.length ? "limit: " + p.rate_limit.join(",") : "", p.cors ? "cors" : ""].filter(Boolean).join("; ")),
      ...traffic(list, r.traffic),
      h("td", {}, figure(list, "rate_limited", fmt((r.traffic || {}).per_second?.rate_limited, 1, "/s"))),
      h("td", {}, traceLink((r.slowest || [])[0])));
  });
  out.push(section("Routes", h("table", {},
    head(["route", "match", "version", "deprecation", "upstream", "policies",
      ["req/s", "weir_requests_total"], ["errors", "weir_requests_total"],
      ["p50 / p99", "weir_request_duration_seconds"], ["rate-limited", "weir_ratelimit_decisions_total"],
      "slowest recent"]),
    h("tbody", {}, rows))));

  const ups = (s.upstreams || []).map((u) => {
    const eps = (u.endpoints || []).map((e) => {
      const st = !e.healthy ? badge("unhealthy", "bad") : e.ejected_for_ms > 0
        ? badge(`ejected ${(e.ejected_for_ms / 1000).toFixed(1)}s`, "bad") : badge("up", "ok");
      return h("div", { "data-endpoint": e.address, "data-healthy": String(e.healthy), "data-breaker": e.breaker },
        h("code", {}, e.address), " ", st, " ", h("span", { class: "muted" }, `in flight ${e.in_flight}`),
        e.ejections ? h("span", { class: "muted" }, `, ejections ${e.ejections}`) : null);
    });
    const errs = Object.entries(u.errors_per_second || {}).filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${v.toFixed(1)}/s`).join(", ");
    return h("tr", { "data-upstream-row": u.name },
      h("td", {}, h("b", {}, u.name)),
      h("td", {}, u.load_balancer || ""),
      h("td", {}, u.health_check ? `${u.health_check.path} every ${u.health_check.interval}` : "none"),
      h("td", {}, eps),
      h("td", {}, errs || "none"));
  });
  out.push(section("Upstreams", h("table", {},
    head(["upstream", "balancer", "health check", ["endpoints", "weir_upstream_endpoint_healthy"],
      ["errors", "weir_upstream_errors_total"]]),
    h("tbody", {}, ups))));

  const certs = s.tls || [];
  out.push(section("TLS certificates", certs.length === 0 ? h("p", { class: "muted" }, "No TLS listener.") :
    h("table", {}, h("thead", {}, h("tr", {}, ["listener", "names", "expires", "days left"].map((x) => h("th", {}, x)))),
      h("tbody", {}, certs.map((c) => h("tr", { "data-cert": c.listener },
        h("td", {}, c.listener), h("td", { class: "wrap" }, (c.names || []).join(", ")),
        h("td", {}, c.error ? h("span", { class: "error" }, c.error) : time(c.not_after_unix_ms)),
        h("td", {}, c.days_left === null || c.days_left === undefined ? "–"
          : badge(String(c.days_left), c.days_left < 14 ? "bad" : c.days_left < 30 ? "warn" : "ok"))))))));

  if (s.mesh) out.push(renderMesh(s));
  return out;
}

// The gateway → services → destinations picture, from each sidecar's own figures.
function renderMesh(s) {
  const edges = []; // {from, to, t}
  const byUpstream = new Map();
  for (const r of s.routes || []) {
    const targets = r.upstream ? [r.upstream] : (r.split || []).filter((x) => x.weight > 0).map((x) => x.upstream);
    for (const u of targets) {
      const acc = byUpstream.get(u) || { rps: 0, errors: 0, p99_ms: null };
      const t = r.traffic || {};
      acc.rps += t.rps || 0;
      acc.errors += (t.rps || 0) * (t.error_rate || 0);
      if (typeof t.p99_ms === "number") acc.p99_ms = Math.max(acc.p99_ms || 0, t.p99_ms);
      byUpstream.set(u, acc);
    }
  }
  for (const [u, a] of byUpstream) {
    edges.push({ from: "gateway", to: u, t: { rps: a.rps, error_rate: a.rps > 0 ? a.errors / a.rps : null, p99_ms: a.p99_ms } });
  }
  const down = new Set();
  for (const p of s.mesh) {
    if (!p.state) { down.add(p.name); continue; }
    for (const d of p.state.destinations || []) edges.push({ from: p.name, to: d.name, t: d.traffic || {} });
  }
  // Columns: gateway, the services it calls, what those call.
  const col = new Map([["gateway", 0]]);
  for (const e of edges) if (e.from === "gateway") col.set(e.to, 1);
  for (const p of s.mesh) if (!col.has(p.name)) col.set(p.name, 1);
  for (const e of edges) if (!col.has(e.to)) col.set(e.to, 2);
  const columns = [[], [], []];
  for (const [n, c] of col) columns[c].push(n);
  const pos = new Map();
  const W = 900, rowH = 70, nodeW = 120, nodeH = 30;
  const height = Math.max(1, ...columns.map((c) => c.length)) * rowH + 20;
  columns.forEach((names, c) => names.forEach((n, i) => {
    pos.set(n, { x: 20 + c * 330, y: 10 + i * rowH + (height - 20 - names.length * rowH) / 2 + (rowH - nodeH) / 2 });
  }));
  const g = svg("svg", { class: "mesh", viewBox: `0 0 ${W} ${height}` });
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const same = a.x === b.x;
    const x1 = a.x + nodeW, y1 = a.y + nodeH / 2;
    const x2 = same ? b.x + nodeW : b.x, y2 = b.y + nodeH / 2;
    // Calls within a column bulge out to the right.
    const d = same
      ? `M${x1} ${y1} C${x1 + 70} ${y1}, ${x2 + 70} ${y2}, ${x2} ${y2}`
      : `M${x1} ${y1} L${x2} ${y2}`;
    const err = e.t.error_rate;
    g.append(svg("path", { d, class: err > 0.05 ? "bad" : "", "data-edge": `${e.from}->${e.to}` }));
    const lx = same ? x1 + 58 : (x1 + x2) / 2 - 60;
    const label = svg("text", { x: lx, y: (y1 + y2) / 2 - 4, class: "edge" + (err > 0.05 ? " bad" : "") });
    const sr = typeof err === "number" ? `${(100 - err * 100).toFixed(1)}% ok` : "no traffic";
    label.textContent = `${sr} · ${fmt(e.t.rps, 1, "/s")} · p99 ${fmt(e.t.p99_ms, 0, "ms")}`;
    g.append(label);
  }
  for (const [n, p] of pos) {
    g.append(svg("rect", { x: p.x, y: p.y, width: nodeW, height: nodeH, class: down.has(n) ? "down" : "", "data-node": n }));
    const t = svg("text", { x: p.x + 10, y: p.y + 19 });
    t.textContent = n;
    g.append(t);
  }
  const errors = s.mesh.filter((p) => p.error).map((p) => h("li", { class: "error" }, `${p.name} (${p.url}): ${p.error}`));
  const links = s.mesh.map((p) => h("li", {}, h("a", { href: `${p.url}/dashboard`, target: "_blank", rel: "noreferrer" }, `${p.name} sidecar dashboard`)));
  return section("Mesh", g, h("ul", {}, errors), h("ul", { class: "muted" }, links));
}

// ---------------------------------------------------------------- sidecar

function breakerBadge(b) {
  const st = (b && b.state) || "closed";
  const kind = st === "closed" ? "ok" : st === "open" ? "bad" : "warn";
  const text = st === "open" && b.ejected_for_ms > 0
    ? `open, ${(b.ejected_for_ms / 1000).toFixed(1)}s left` : st.replace("_", "-");
  return badge(text, kind, { "data-breaker-state": st });
}

const SIDECAR_TRAFFIC = [["req/s", "weir_sidecar_requests_total"], ["errors", "weir_sidecar_requests_total"],
  ["p50 / p99", "weir_sidecar_request_duration_seconds"]];

function renderSidecar(s) {
  const out = [];
  const inb = s.inbound || {};
  const list = remember("inbound", figures(inb.traffic));
  const used = inb.max_concurrent_requests ? inb.in_flight / inb.max_concurrent_requests : 0;
  const bar = h("span", { class: "bar" }, h("span", {}));
  bar.firstChild.style.width = `${Math.min(100, used * 100).toFixed(1)}%`;
  out.push(section("Inbound",
    h("div", { class: "kv" },
      h("div", {}, h("span", {}, "service"), h("b", {}, s.service)),
      h("div", { "data-identity": s.identity === null ? "none" : "set" }, h("span", {}, "identity"),
        s.identity === null || s.identity === undefined ? h("span", { class: "muted" }, "none") : String(s.identity.id || "waiting for a certificate")),
      h("div", {}, h("span", {}, "in flight"), bar, ` ${inb.in_flight ?? "–"} / ${inb.max_concurrent_requests ?? "–"}`),
    ),
    h("table", {}, head(SIDECAR_TRAFFIC), h("tbody", {}, h("tr", {}, traffic(list, inb.traffic))))));

  for (const d of s.destinations || []) {
    const dl = remember("dest:" + d.name, figures(d.traffic));
    const budget = d.retry_budget || {};
    const eps = (d.endpoints || []).map((e) => h("tr", { "data-endpoint": e.address, "data-breaker": (e.breaker || {}).state || "closed" },
      h("td", {}, h("code", {}, e.address)),
      h("td", {}, breakerBadge(e.breaker)),
      h("td", {}, String((e.breaker || {}).consecutive_failures ?? 0)),
      h("td", {}, String((e.breaker || {}).ejections ?? 0)),
      h("td", {}, fmt(e.latency_ewma_ms, 1, " ms")),
      h("td", {}, String(e.in_flight))));
    out.push(h("section", { "data-destination": d.name }, h("h2", {}, `→ ${d.name}`),
      h("div", { class: "kv" },
        h("div", {}, h("span", {}, "balancer"), d.load_balancer || ""),
        h("div", {}, h("span", {}, "ejected"), String(d.ejected ?? 0)),
        h("div", {}, h("span", {}, "retry budget left"), h("b", { "data-budget": "" }, fmt(budget.remaining, 1)),
          ` (ratio ${budget.ratio}, min ${budget.min_per_second}/s)`),
        h("div", {}, h("span", {}, "retries"), figure(dl, "retries", fmt((d.traffic || {}).per_second?.retries, 1, "/s")),
          metricLink("weir_sidecar_retries_total"))),
      h("table", {}, head(SIDECAR_TRAFFIC), h("tbody", {}, h("tr", {}, traffic(dl, d.traffic)))),
      h("table", {}, h("thead", {}, h("tr", {}, ["endpoint", "breaker", "failures in a row", "ejections", "EWMA latency", "in flight"].map((x) => h("th", {}, x)))),
        h("tbody", {}, eps))));
  }
  return out;
}

// ---------------------------------------------------------------- wiring

function render(s) {
  state = s;
  document.getElementById("kind").textContent = s.kind;
  document.getElementById("who").textContent = s.kind === "sidecar" ? s.service : "";
  document.title = `Weir ${s.kind}${s.service ? " " + s.service : ""}`;
  document.getElementById("updated").textContent = "updated " + new Date(s.generated_at_unix_ms).toLocaleTimeString();
  const app = document.getElementById("app");
  app.replaceChildren(...(s.kind === "gateway" ? renderGateway(s) : renderSidecar(s)));
  app.dataset.frames = String(Number(app.dataset.frames || 0) + 1);
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/dashboard/events");
  es.addEventListener("open", () => { conn.textContent = "live"; conn.className = "badge ok"; conn.dataset.conn = "live"; });
  es.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "badge warn"; conn.dataset.conn = "reconnecting"; });
  es.addEventListener("state", (ev) => {
    try { render(JSON.parse(ev.data)); } catch (e) { console.error(e); }
  });
}

connect();
