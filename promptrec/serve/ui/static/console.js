// promptrec console: plain JavaScript, no dependencies. Every piece of data comes from /ui/api/..., fetched
// with the key the user typed (kept in sessionStorage, sent only as an Authorization header).
"use strict";

const KEY = "promptrec-console-key";
const $ = (id) => document.getElementById(id);
const state = { meta: null, user: null, timeline: [], recs: null, timer: null, pending: 0, poll: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k.includes("-")) node.setAttribute(k, v); else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function status(text, error = false) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

async function api(path, params = {}) {
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new Error("no key");
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  const resp = await fetch(`/ui/api/${path}${query.toString() ? "?" + query : ""}`,
                           { headers: { Authorization: `Bearer ${key}` }, cache: "no-store" });
  if (resp.status === 401 || resp.status === 403) { clearData(); throw new Error(`key refused (HTTP ${resp.status})`); }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(`HTTP ${resp.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return (resp.headers.get("content-type") || "").includes("json") ? resp.json() : resp;
}

function clearData() {
  state.meta = null; state.user = null;
  for (const id of ["recs", "recs-legend", "user-results", "results-list", "results-view"]) $(id).replaceChildren();
  $("timeline").tBodies[0].replaceChildren(); $("times-table").tHead.replaceChildren(); $("times-table").tBodies[0].replaceChildren();
  $("prompt-text").textContent = ""; $("user-name").textContent = ""; $("recs-info").textContent = "";
  $("recs").dataset.query = ""; drawMap();
}

// -- local wall-clock times as "YYYY-MM-DDTHH:MM" strings (the data's time zone; no browser zone involved)
function parseLocal(s) { const [d, t] = s.split("T"); const [y, m, day] = d.split("-").map(Number); const [h, mi] = t.split(":").map(Number); return new Date(Date.UTC(y, m - 1, day, h, mi)); }
function fmtLocal(d) { const p = (n) => String(n).padStart(2, "0"); return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`; }
function weekdayOf(d) { return (d.getUTCDay() + 6) % 7; } // Monday 0

function syncControls() {
  const d = parseLocal($("now").value);
  $("hour").value = d.getUTCHours(); $("hour-out").textContent = `${String(d.getUTCHours()).padStart(2, "0")}:00`;
  $("weekday").value = weekdayOf(d);
}

function setNow(d) { $("now").value = fmtLocal(d); syncControls(); schedule(); }

function context() {
  return { user: state.user, now: $("now").value, device: $("device").value, lat: $("lat").value, lon: $("lon").value };
}

function schedule(delay = 120) { clearTimeout(state.timer); state.timer = setTimeout(refresh, delay); }

async function refresh() {
  if (!state.user || !state.meta) return;
  await Promise.all([loadRecs(), loadTimeline(), loadTimes()]);
}

async function loadRecs() {
  const ctx = context(), k = $("k").value || 20, rerank = $("rerank").checked;
  const ticket = ++state.pending;
  $("recs").setAttribute("aria-busy", "true");
  try {
    const r = await api("recommend", { ...ctx, k, rerank });
    if (ticket !== state.pending) return; // a newer request is on its way
    state.recs = r; renderRecs(r, ctx);
  } catch (e) { status(`Recommendations: ${e.message}`, true); }
  finally { $("recs").removeAttribute("aria-busy"); }
}

function renderRecs(r, ctx) {
  $("k-shown").textContent = r.items.length;
  $("recs-when").textContent = `at ${r.weekday} ${r.now_local.replace("T", " ")}` + (r.device ? ` on ${r.device}` : "");
  $("recs-info").textContent = `${r.history_events} earlier events; ` + (r.reranked ? `ordered by the LLM (${r.llm.backend}, ${r.llm.strategy}, ${r.llm.prompt_tokens} prompt tokens)` : `retriever order: ${r.fallback_reason}`) + `; server ${r.server_ms} ms`;
  const maxAbs = Math.max(1e-9, ...r.items.flatMap((i) => Object.values(i.components).map(Math.abs)));
  const signals = r.items.length ? Object.keys(r.items[0].components) : [];
  const grid = (cells) => { const g = el("div", { class: "bars" }); g.style.gridTemplateColumns = `repeat(${signals.length}, 5.6rem)`; g.append(...cells); return g; };
  $("recs-legend").replaceChildren(grid(signals.map((s) => el("span", { text: s }))));
  $("recs").replaceChildren(...r.items.map((i) => {
    const bars = grid(signals.map((name) => {
      const v = i.components[name] || 0, bar = el("span", { class: v < 0 ? "bar neg" : "bar" });
      bar.style.width = `${Math.max(1, Math.round(100 * Math.abs(v) / maxAbs))}%`;
      return el("span", { class: "sig", title: `${name} ${v.toFixed(3)}` }, bar, el("span", { class: "sr", text: `${name} ${v.toFixed(3)}` }));
    }));
    const extra = [];
    if (i.llm_score !== null) extra.push(` · LLM ${i.llm_score.toFixed(3)}`);
    if (i.moved !== null) {
      const m = i.moved, cls = m > 0 ? "moved-up" : m < 0 ? "moved-down" : "";
      extra.push(el("span", { class: cls, text: m > 0 ? ` ▲${m} (retriever #${i.retriever_rank})` : m < 0 ? ` ▼${-m} (retriever #${i.retriever_rank})` : " (same place)" }));
    }
    return el("li", { "data-item": i.item_id, "data-category": i.category },
              el("span", { class: "title", text: i.title }), el("span", { class: "cat", text: i.category }),
              el("span", { class: "muted", text: ` ${i.item_id} · retriever ${i.retriever_score.toFixed(3)}` }), ...extra, bars);
  }));
  $("recs").dataset.query = [ctx.user, ctx.now, ctx.device, ctx.lat, ctx.lon].join("|");
  drawMap();
}

async function loadTimeline() {
  try {
    const t = await api("timeline", { user: state.user, limit: 200 });
    state.timeline = t.events;
    const nowMs = state.recs ? state.recs.now_ms : Infinity;
    $("timeline").tBodies[0].replaceChildren(...t.events.slice().reverse().map((e) => {
      const tr = el("tr", { "data-item": e.item_id },
        el("td", { text: e.local }), el("td", { text: `${e.title} (${e.category || e.item_id})` }),
        el("td", { text: e.device || "" }), el("td", { text: e.place ? e.place.map((v) => v.toFixed(3)).join(", ") : "" }));
      if (e.ts_ms >= nowMs) tr.className = "after-now";
      if (e.posted) tr.classList.add("posted");
      return tr;
    }));
    $("timeline").dataset.count = t.events.length;
    drawMap();
  } catch (e) { status(`Timeline: ${e.message}`, true); }
}

async function loadTimes() {
  const ctx = context();
  try {
    const t = await api("times", ctx);
    $("times-table").tHead.replaceChildren(el("tr", {}, el("th", { scope: "col", text: "Hour" }),
      ...t.days.map((d) => el("th", { scope: "col", text: d }))));
    $("times-table").tBodies[0].replaceChildren(...t.hours.map((h) => el("tr", {},
      el("th", { scope: "row", text: `${h}:00` }),
      ...t.days.map((d) => {
        const slot = t.slots.find((s) => s.day === d && s.hour === h);
        return el("td", {}, el("ol", {}, ...slot.items.map((i) => el("li", { "data-category": i.category },
          `${i.title} `, el("span", { class: "cat", text: i.category })))));
      }))));
  } catch (e) { status(`Other times: ${e.message}`, true); }
}

// -- map: equirectangular over the catalogue's coordinates (or the world); a click sets the place
function bounds() {
  const m = state.meta && state.meta.map;
  if (!m) return { lat: [-90, 90], lon: [-180, 180] };
  const pad = (a) => { const d = Math.max(0.01, (a[1] - a[0]) * 0.05); return [a[0] - d, a[1] + d]; };
  return { lat: pad(m.lat), lon: pad(m.lon) };
}

function drawMap() {
  const c = $("map"), g = c.getContext("2d"), b = bounds();
  g.fillStyle = "#f4f7fb"; g.fillRect(0, 0, c.width, c.height);
  const x = (lon) => (lon - b.lon[0]) / (b.lon[1] - b.lon[0]) * c.width;
  const y = (lat) => (b.lat[1] - lat) / (b.lat[1] - b.lat[0]) * c.height;
  const dot = (p, color, r) => { g.fillStyle = color; g.beginPath(); g.arc(x(p[1]), y(p[0]), r, 0, 2 * Math.PI); g.fill(); };
  let shown = 0;
  for (const e of state.timeline) if (e.place) { dot(e.place, "#0b57d0", 3); shown++; }
  if (state.recs) for (const i of state.recs.items) if (i.coords) { dot(i.coords, "#e37400", 4); shown++; }
  const lat = parseFloat($("lat").value), lon = parseFloat($("lon").value);
  if (!isNaN(lat) && !isNaN(lon)) {
    g.strokeStyle = "#b3261e"; g.lineWidth = 2; g.beginPath();
    g.moveTo(x(lon) - 8, y(lat)); g.lineTo(x(lon) + 8, y(lat)); g.moveTo(x(lon), y(lat) - 8); g.lineTo(x(lon), y(lat) + 8); g.stroke();
  }
  $("map-note").textContent = !state.meta ? "" : state.meta.map
    ? `Blue: the user's places; orange: recommended items. ${shown} points.`
    : "This catalogue has no item coordinates (latitude/longitude): no map. Latitude and longitude can still be typed.";
}

$("map").addEventListener("click", (ev) => {
  if (!state.meta) return;
  const c = $("map"), r = c.getBoundingClientRect(), b = bounds();
  const px = (ev.clientX - r.left) * c.width / r.width, py = (ev.clientY - r.top) * c.height / r.height;
  $("lon").value = (b.lon[0] + px / c.width * (b.lon[1] - b.lon[0])).toFixed(5);
  $("lat").value = (b.lat[1] - py / c.height * (b.lat[1] - b.lat[0])).toFixed(5);
  schedule(0);
});

// -- users
async function findUsers() {
  try {
    const found = await api("users", { q: $("user-q").value, limit: 12 });
    $("user-results").replaceChildren(...found.map((u) => {
      const b = el("button", { type: "button", text: u, "data-user": u });
      b.setAttribute("role", "listitem");
      if (u === state.user) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => selectUser(u));
      return b;
    }));
  } catch (e) { status(`Users: ${e.message}`, true); }
}

function selectUser(u) {
  state.user = u; $("user-name").textContent = u;
  for (const b of $("user-results").children) b.setAttribute("aria-current", b.dataset.user === u ? "true" : "false");
  $("prompt-text").textContent = ""; $("prompt-info").textContent = "";
  schedule(0);
}

async function start() {
  try {
    const m = await api("meta");
    state.meta = m;
    $("tz").textContent = m.timezone;
    $("device").replaceChildren(el("option", { value: "", text: "(none)" }), ...m.devices.map((d) => el("option", { value: d, text: d })));
    $("now").value = m.default_now; syncControls();
    $("map").hidden = !m.map;
    $("rerank").disabled = !m.llm;
    status(`${m.users} users, ${m.items} items; times in ${m.timezone}; data ${m.data_from.replace("T", " ")} to ${m.data_until.replace("T", " ")}; LLM: ${m.llm ? m.llm.backend + " (" + m.llm.strategy + ")" : "none"}.`);
    await findUsers();
    if (!state.user && m.first_user) selectUser(m.first_user);
    loadResults();
  } catch (e) { status(e.message === "no key" ? "Type an API key to see data." : `Cannot load: ${e.message}`, true); }
}

// -- prompt
$("prompt-btn").addEventListener("click", async () => {
  if (!state.user) return;
  $("prompt-info").textContent = "Asking the LLM...";
  try {
    const p = await api("prompt", context());
    if (!p.llm || !p.calls || !p.calls.length) { $("prompt-info").textContent = p.message || "No prompt."; $("prompt-text").textContent = ""; return; }
    const labels = p.calls.map((c) => c.label_logprobs ? Object.entries(c.label_logprobs).map(([l, v]) => `${l}: ${v.toFixed(3)}`).join(", ") : "").filter(Boolean);
    $("prompt-info").textContent = `${p.llm.backend} · ${p.llm.strategy} · ${p.calls.length} call(s) · ${p.prompt_tokens} prompt tokens` + (labels.length ? ` · label scores: ${labels.join(" | ")}` : "");
    $("prompt-text").textContent = p.calls.map((c, n) => `--- call ${n + 1}: ${c.prompt_tokens} prompt tokens, ${c.output_tokens} output tokens\n${c.prompt}\n--- output\n${c.output}`).join("\n\n");
  } catch (e) { $("prompt-info").textContent = e.message; }
});

// -- live
$("live-on").addEventListener("change", () => {
  clearInterval(state.poll);
  if ($("live-on").checked) state.poll = setInterval(() => { loadTimeline(); loadRecs(); }, 3000);
  $("live-info").textContent = $("live-on").checked ? "Polling every 3 s." : "Not polling.";
});

$("post-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!state.user || !state.recs) return;
  const at = new Date(state.recs.now_ms - 60000).toISOString();
  const body = { user_id: state.user, item_id: $("post-item").value.trim(), timestamp: at, event_type: "view",
                 event_id: `console-${Date.now()}`,
                 context: $("device").value ? { device: $("device").value } : {} };
  const resp = await fetch("/events", { method: "POST", body: JSON.stringify(body),
    headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, "Content-Type": "application/json" } });
  const out = await resp.json().catch(() => ({}));
  $("live-info").textContent = resp.ok ? `Stored (${out.events_stored_total} events stored in all).` : `Not stored: ${out.detail || resp.status}`;
  if (resp.ok) { loadTimeline(); loadRecs(); }
});

// -- results
async function loadResults() {
  try {
    const r = await api("results");
    const items = r.files.filter((f) => f.kind === "png" || f.path.endsWith("results.md") || !f.path.includes("/"));
    $("results-list").replaceChildren(...(items.length ? items.map((f) => {
      const b = el("button", { type: "button", text: f.path, "data-path": f.path });
      b.addEventListener("click", () => showResult(f));
      return el("li", {}, b);
    }) : [el("li", { text: "No results folder (promptrec serve --results DIR)." })]));
  } catch (e) { status(`Results: ${e.message}`, true); }
}

async function showResult(f) {
  try {
    const resp = await api("results/file", { path: f.path });
    const view = $("results-view");
    if (f.kind === "png") {
      const url = URL.createObjectURL(await resp.blob());
      view.replaceChildren(el("h3", { text: f.path }), el("img", { src: url, alt: `Figure ${f.path}` }));
    } else {
      view.replaceChildren(el("h3", { text: f.path }), markdown(await resp.text()));
    }
    view.focus();
  } catch (e) { status(`Results: ${e.message}`, true); }
}

function markdown(text) {
  // a tiny subset: headings, pipe tables, code fences; everything else as paragraphs (text only, never HTML)
  const out = el("div"), lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    if (line.startsWith("```")) {
      const code = []; n++;
      while (n < lines.length && !lines[n].startsWith("```")) code.push(lines[n++]);
      out.append(el("pre", { text: code.join("\n") }));
    } else if (/^#{1,6} /.test(line)) {
      const level = Math.min(6, line.match(/^#+/)[0].length + 2);
      out.append(el(`h${level}`, { text: line.replace(/^#+ /, "") }));
    } else if (line.trim().startsWith("|")) {
      const rows = [];
      while (n < lines.length && lines[n].trim().startsWith("|")) rows.push(lines[n++]);
      n--;
      const cells = (r) => r.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
      const body = rows.filter((r) => !/^\s*\|[\s:|-]+\|\s*$/.test(r));
      const table = el("table");
      body.forEach((r, i) => table.append(el("tr", {}, ...cells(r).map((c) => el(i === 0 ? "th" : "td", { text: c })))));
      out.append(table);
    } else if (line.trim()) {
      out.append(el("p", { text: line }));
    }
  }
  return out;
}

// -- controls
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const k = $("key").value.trim();
  if (k) sessionStorage.setItem(KEY, k);
  $("key").value = "";
  start();
});
$("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); clearData(); status("Key forgotten; no data shown."); });
$("user-q").addEventListener("input", () => { clearTimeout(state.search); state.search = setTimeout(findUsers, 150); });
$("now").addEventListener("change", () => { if ($("now").value) { syncControls(); schedule(); } });
$("hour").addEventListener("input", () => { const d = parseLocal($("now").value); d.setUTCHours(Number($("hour").value)); setNow(d); });
$("weekday").addEventListener("change", () => { const d = parseLocal($("now").value); d.setUTCDate(d.getUTCDate() + Number($("weekday").value) - weekdayOf(d)); setNow(d); });
for (const id of ["device", "k", "rerank", "lat", "lon"]) $(id).addEventListener("change", () => schedule());
$("clear-place").addEventListener("click", () => { $("lat").value = ""; $("lon").value = ""; schedule(0); });

drawMap();
if (sessionStorage.getItem(KEY)) start();
