// couponpush console: polls the JSON routes and draws the page. No
// framework; charts are inline SVG.
"use strict";
(function () {
  const base = document.querySelector('meta[name="console-path"]').content;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const k of kids) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const num = (n) => (n < 0 ? "-" : Math.round(n).toLocaleString("en-US"));
  const dur = (ms) => (ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s");
  const time = (s) => (s ? s.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");

  async function api(path, opts) {
    opts = opts || {};
    opts.headers = Object.assign({ "X-CSRF-Token": csrf }, opts.headers || {});
    opts.credentials = "same-origin";
    const r = await fetch(base + path, opts);
    if (r.status === 401) { location.href = base + "login"; throw new Error("logged out"); }
    const body = r.status === 204 ? {} : await r.json();
    if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
    return body;
  }
  const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });

  function rows(tbody, list, cells) {
    tbody.replaceChildren(...list.map((x) => {
      const tr = el("tr");
      for (const c of cells(x)) tr.append(c instanceof Node ? c : el("td", {}, c));
      return tr;
    }));
  }

  function chart(points, grabStart) {
    const W = 1000, H = 170, P = 4;
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    if (points.length < 2) {
      const t = svg("text", { x: 10, y: H / 2, class: "axis" });
      t.textContent = "collecting samples…";
      s.append(t);
      return s;
    }
    const t0 = points[0][0], t1 = points[points.length - 1][0];
    const ymax = Math.max(1, ...points.map((p) => Math.max(p[1], p[2])));
    const x = (t) => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
    const y = (v) => H - P - (v / ymax) * (H - 2 * P - 12);
    const line = (i, cls) => svg("polyline", { class: cls, points: points.map((p) => x(p[0]).toFixed(1) + "," + y(p[i]).toFixed(1)).join(" ") });
    s.append(line(1, "due"), line(2, "published"));
    const g = Date.parse(grabStart);
    if (g >= t0 && g <= t1) s.append(svg("line", { class: "grab", x1: x(g), x2: x(g), y1: P, y2: H - P }));
    const label = svg("text", { x: P + 2, y: 12, class: "axis" });
    label.textContent = num(ymax) + " items · last " + Math.round((t1 - t0) / 1000) + " s";
    s.append(label);
    return s;
  }

  function drops(list) {
    const box = $("drops");
    if (!list.length) { box.replaceChildren(el("p", { class: "empty" }, "No live template.")); return; }
    box.replaceChildren(...list.map((d) => {
      const cls = d.forecast.replace(/ /g, "-");
      let eta = "";
      if (d.eta) eta = `ETA ${time(d.eta)} (${d.margin_ms >= 0 ? dur(d.margin_ms) + " before" : dur(-d.margin_ms) + " after"} the grab start)`;
      return el("article", { class: "drop", id: "drop-" + d.id, "data-template": d.id },
        el("h3", {}, `#${d.id} ${d.name}`, el("span", { class: "forecast " + cls }, d.forecast)),
        el("p", { class: "meta" }, `grab start ${time(d.grab_start)} · ${eta}`),
        el("div", { class: "figures" },
          fig("pending", d.pending), fig("sent", d.sent), fig("cancelled", d.cancelled),
          fig("due", d.due), fig("published", d.published),
          fig("late p50", d.p50_ms < 0 ? "-" : d.p50_ms + " ms"), fig("late p99", d.p99_ms < 0 ? "-" : d.p99_ms + " ms")),
        chart(d.chart, d.grab_start),
        el("p", { class: "legend" }, el("span", { class: "due" }, "— due"), " ", el("span", { class: "published" }, "— published"), " ", el("span", { class: "grab" }, "| grab start")));
    }));
  }
  function fig(name, v) {
    return el("div", { class: "fig " + name.replace(/ /g, "-") }, el("b", {}, typeof v === "number" ? num(v) : v), el("span", {}, name));
  }

  function overview(o) {
    $("state").textContent = o.paused ? "PAUSED" : "emitting";
    $("state").className = "badge " + (o.paused ? "paused" : "ok");
    $("queue-count").textContent = o.queues.found ? o.queues.count : (o.queues.count ? `${o.queues.count} (default: absent in Consul)` : "absent (default)");
    $("worker-count").textContent = o.workers.length;
    $("publish-rate").textContent = num(o.publish_rate);
    $("sampled-at").textContent = time(o.sampled_at);
    $("errors").replaceChildren(...Object.entries(o.errors).map(([k, v]) => el("p", { class: "error" }, k + ": " + v)));
    drops(o.drops);
    const q = o.queues;
    let layout = q.recorded ? `${q.to} queues, generation ${q.generation}, span ${q.span}` : `${q.span} queues (no layout recorded in Redis: N never changed)`;
    if (q.moving) layout = `moving ${q.from} → ${q.to} queues: ${num(q.moved)}/${num(q.total)} users moved`;
    $("layout").textContent = `${layout} · due users ${num(q.due_users)} · in flight ${num(q.in_flight)} · prepared chunks ${num(q.ready)} · max lag ${dur(q.max_lag_ms)} · dead letters ${num(q.dead_letters)}`;
    rows($("queues").tBodies[0], q.list, (x) => [x.queue, num(x.depth), num(x.users), dur(x.lag_ms), num(x.in_flight), num(x.ready), num(x.marks), num(x.in_transit), num(x.dead_letters), x.lease_holder || "free"]);
    rows($("workers").tBodies[0], o.workers, (w) => [w.id, w.address, el("td", { class: "health " + w.status }, w.status), w.roles || "all", w.ops_addr || "-", w.leases, w.scrape]);
    rows($("coupons").tBodies[0], o.coupons.templates, (t) => [`#${t.id} ${t.name}`, num(t.stock), num(t.issued), t.remaining < 0 ? "?" : num(t.remaining), t.remaining < 0 ? "?" : num(t.drift)]);
    const claims = Object.entries(o.coupons.claims).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${num(v)}`).join(" · ");
    $("claims").textContent = `claims: ${claims || "none yet"} · reconcile drift ${num(o.coupons.drift)}`;
  }

  async function audit() {
    const a = await api("api/audit");
    rows($("audit").tBodies[0], a.audit, (x) => [time(x.at), x.operator, x.action, x.detail, el("td", { class: "result " + x.result }, x.result), x.message]);
  }

  async function tick() {
    try { overview(await api("api/overview")); } catch (e) { $("errors").replaceChildren(el("p", { class: "error" }, "console: " + e.message)); }
    setTimeout(tick, 1000);
  }
  async function auditTick() {
    try { await audit(); } catch (e) { /* shown by the overview's errors */ }
    setTimeout(auditTick, 3000);
  }

  let pending = null;
  async function prepare(action) {
    const body = { action };
    if (action === "set_queue_count") body.count = parseInt($("new-n").value, 10) || 0;
    $("action-result").textContent = "";
    try {
      pending = await post("api/actions", body);
      $("confirm-summary").textContent = pending.summary;
      $("confirm-box").hidden = false;
    } catch (e) { $("action-result").textContent = "refused: " + e.message; }
  }
  async function confirm(yes) {
    const p = pending;
    pending = null;
    $("confirm-box").hidden = true;
    if (!p) return;
    try {
      if (!yes) { await post(`api/actions/${p.id}/cancel`); $("action-result").textContent = "cancelled"; return; }
      const r = await post(`api/actions/${p.id}/confirm`);
      $("action-result").textContent = `${r.action}: ${r.result} (${r.message})`;
    } catch (e) { $("action-result").textContent = "failed: " + e.message; }
    audit().catch(() => {});
  }

  async function traceUser(ev) {
    ev.preventDefault();
    const id = $("user-id").value;
    const box = $("user");
    try {
      const u = await api("api/user/" + encodeURIComponent(id));
      const t = el("table", {}, el("thead", {}, el("tr", {}, ...["template", "push at", "MySQL", "version", "push id", "sent at", "Redis", "note"].map((h) => el("th", {}, h)))), el("tbody"));
      rows(t.tBodies[0], u.reminders, (r) => [r.template_id, time(r.push_at), r.status || "-", r.version || "-", r.push_id || "-", time(r.sent_at),
        r.redis.map((e) => `q${e.queue} ${e.state} v${e.version}${e.in_transit ? " in transit" : ""}`).join(", ") || "absent", r.note]);
      box.replaceChildren(el("p", { class: "meta" }, `user ${u.user_id} · layout ${u.layout} · queue ${u.queues.join(" then ")}${u.in_transit ? " · in transit" : ""}`),
        u.reminders.length ? t : el("p", { class: "empty" }, "No reminders in MySQL or Redis."));
    } catch (e) { box.replaceChildren(el("p", { class: "error" }, e.message)); }
  }

  document.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", () => prepare(b.dataset.action)));
  $("confirm-yes").addEventListener("click", () => confirm(true));
  $("confirm-no").addEventListener("click", () => confirm(false));
  $("user-form").addEventListener("submit", traceUser);
  $("logout").addEventListener("click", async () => { try { await post("logout"); } finally { location.href = base + "login"; } });
  tick();
  auditTick();
})();
