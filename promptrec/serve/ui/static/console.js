// promptrec console: plain JavaScript, no dependencies. Every piece of data comes from /ui/api/..., fetched
// with the key the user typed (kept in sessionStorage, sent only as an Authorization header).
"use strict";

const KEY = "promptrec-console-key";
const $ = (id) => document.getElementById(id);
const state = { meta: null, user: null, timeline: [], recs: null, places: null, timer: null, pending: 0, poll: null,
                seq: { timeline: 0, times: 0 } };
const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const TIMELINE_LIMIT = 200;

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
  state.meta = null; state.user = null; state.timeline = []; state.recs = null; state.times = null; state.places = null;
  for (const id of ["recs", "recs-legend", "user-results", "results-list", "results-view"]) $(id).replaceChildren();
  $("timeline").tBodies[0].replaceChildren(); $("times-table").tHead.replaceChildren(); $("times-table").tBodies[0].replaceChildren();
  $("prompt-text").textContent = ""; $("user-name").textContent = ""; $("recs-info").textContent = ""; $("timeline-note").textContent = "";
  $("recs").dataset.query = ""; drawMap();
}

// -- local wall-clock times as "YYYY-MM-DDTHH:MM" strings (the data's time zone; no browser zone involved)
function parseLocal(s) { const [d, t] = s.split("T"); const [y, m, day] = d.split("-").map(Number); const [h, mi] = t.split(":").map(Number); return new Date(Date.UTC(y, m - 1, day, h, mi)); }
function fmtLocal(d) { const p = (n) => String(n).padStart(2, "0"); return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`; }
function weekdayOf(d) { return (d.getUTCDay() + 6) % 7; } // Monday 0

function syncControls() {
  const d = parseLocal($("now").value);
  $("hour").value = d.getUTCHours(); $("hour-out").textContent = `${String(d.getUTCHours()).padStart(2, "0")}:00`;
  const wd = weekdayOf(d);
  $("weekday").value = wd; $("weekday-out").textContent = DAYS[wd]; $("weekday").setAttribute("aria-valuetext", DAYS[wd]);
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
    state.recs = r; state.recsCtx = ctx; renderRecs(r, ctx);
  } catch (e) { status(`Recommendations: ${e.message}`, true); }
  finally { $("recs").removeAttribute("aria-busy"); }
}

// the item text: its title, and its category when that says something more (check-in places are titled by it)
function itemText(i) { return i.category && i.category !== i.title ? `${i.title} (${i.category})` : i.title; }

function km(a, b) {
  const rad = Math.PI / 180, dLat = (b[0] - a[0]) * rad, dLon = (b[1] - a[1]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(h)));
}

// where the user is for the place signal: the place set in the controls, else the place of the last event before now
function origin() {
  const lat = parseFloat($("lat").value), lon = parseFloat($("lon").value);
  if (!isNaN(lat) && !isNaN(lon)) return { at: [lat, lon], what: "the place set" };
  const nowMs = state.recs ? state.recs.now_ms : Infinity;
  const before = state.timeline.filter((e) => e.place && e.ts_ms < nowMs);
  return before.length ? { at: before[before.length - 1].place, what: "the last place" } : null;
}

function renderRecs(r, ctx) {
  $("k-shown").textContent = r.items.length;
  $("recs-when").textContent = `at ${r.weekday} ${r.now_local.replace("T", " ")}` + (r.device ? ` on ${r.device}` : "");
  $("recs-info").textContent = `${r.history_events} earlier events; ` + (r.reranked ? `ordered by the LLM (${r.llm.backend}, ${r.llm.strategy}, ${r.llm.prompt_tokens} prompt tokens)` : `retriever order: ${r.fallback_reason}`) + `; server ${r.server_ms} ms`;
  const signals = r.items.length ? Object.keys(r.items[0].components) : [];
  // bars share one scale, set by the columns that differ between items (a constant such as a learned blend's
  // bias says nothing about the order; its bar is capped at the full width)
  const varies = signals.filter((s) => new Set(r.items.map((i) => (i.components[s] || 0).toFixed(6))).size > 1);
  const maxAbs = Math.max(1e-9, ...r.items.flatMap((i) => (varies.length ? varies : signals).map((s) => Math.abs(i.components[s] || 0))));
  const grid = (cells) => { const g = el("div", { class: "bars" }); g.style.gridTemplateColumns = `repeat(${signals.length}, minmax(2.5rem, 5.6rem))`; g.append(...cells); return g; };
  const from = origin();
  $("recs-legend").replaceChildren(grid(signals.map((s) => el("span", { text: s, title: s + (varies.includes(s) ? "" : " (the same for every item)") }))));
  $("recs").replaceChildren(...r.items.map((i) => {
    const bars = grid(signals.map((name) => {
      const v = i.components[name] || 0, bar = el("span", { class: !varies.includes(name) && varies.length ? "bar const" : v < 0 ? "bar neg" : "bar" });
      bar.style.width = `${Math.min(100, Math.max(1, Math.round(100 * Math.abs(v) / maxAbs)))}%`;
      return el("span", { class: "sig", title: `${name} ${v.toFixed(3)}` }, bar, el("span", { class: "sr", text: `${name} ${v.toFixed(3)}` }));
    }));
    const extra = [];
    if (from && i.coords) extra.push(el("span", { class: "dist", text: ` · ${km(from.at, i.coords).toFixed(1)} km from ${from.what}` }));
    if (i.llm_score !== null) extra.push(` · LLM ${i.llm_score.toFixed(3)}`);
    if (i.moved !== null) {
      const m = i.moved, cls = m > 0 ? "moved-up" : m < 0 ? "moved-down" : "";
      extra.push(el("span", { class: cls, text: m > 0 ? ` ▲${m} (retriever #${i.retriever_rank})` : m < 0 ? ` ▼${-m} (retriever #${i.retriever_rank})` : " (same place)" }));
    }
    return el("li", { "data-item": i.item_id, "data-category": i.category },
              el("span", { class: "title", text: i.title }), ...(i.category && i.category !== i.title ? [el("span", { class: "cat", text: i.category })] : []),
              el("span", { class: "muted", text: ` ${i.item_id} · retriever ${i.retriever_score.toFixed(3)}` }), ...extra, bars);
  }));
  $("recs").dataset.query = [ctx.user, ctx.now, ctx.device, ctx.lat, ctx.lon].join("|");
  drawMap();
}

async function loadTimeline() {
  try {
    const ticket = ++state.seq.timeline;
    const t = await api("timeline", { user: state.user, limit: TIMELINE_LIMIT });
    if (ticket !== state.seq.timeline) return; // a newer request (another user, perhaps) is on its way
    state.timeline = t.events;
    const nowMs = state.recs ? state.recs.now_ms : Infinity;
    $("timeline").tBodies[0].replaceChildren(...t.events.slice().reverse().map((e) => {
      const tr = el("tr", { "data-item": e.item_id },
        el("td", { text: e.local }), el("td", { text: itemText(e), title: e.item_id }),
        el("td", { text: e.device || "" }), el("td", { text: e.place ? e.place.map((v) => v.toFixed(3)).join(", ") : "" }));
      if (e.ts_ms >= nowMs) tr.className = "after-now";
      if (e.posted) tr.classList.add("posted");
      return tr;
    }));
    $("timeline").dataset.count = t.events.length; $("timeline").dataset.user = t.user_id;
    const later = t.events.filter((e) => e.ts_ms >= nowMs).length;
    $("timeline-note").textContent = (t.events.length >= TIMELINE_LIMIT ? `The latest ${TIMELINE_LIMIT} events` : `${t.events.length} events`)
      + (later ? `; ${later} after the chosen time (grey)` : "") + `; local times in ${t.timezone}`
      + (state.meta && state.meta.utc_offset ? ` (${state.meta.utc_offset})` : "") + ".";
    // distances are measured from the last place: draw again what came before the timeline
    if (state.recs && state.recs.user_id === state.user) renderRecs(state.recs, state.recsCtx); else drawMap();
    if (state.times && state.times.user_id === state.user) renderTimes(state.times);
  } catch (e) { status(`Timeline: ${e.message}`, true); }
}

async function loadTimes() {
  const ctx = context();
  const ticket = ++state.seq.times;
  try {
    const t = await api("times", ctx);
    if (ticket !== state.seq.times) return;
    state.times = t; renderTimes(t);
  } catch (e) { status(`Other times: ${e.message}`, true); }
}

function renderTimes(t) {
  const from = origin();
  $("times-table").dataset.user = t.user_id;
  $("times-table").tHead.replaceChildren(el("tr", {}, el("th", { scope: "col", text: "Hour" }),
    ...t.days.map((d) => el("th", { scope: "col", text: d }))));
  $("times-table").tBodies[0].replaceChildren(...t.hours.map((h) => el("tr", {},
    el("th", { scope: "row", text: `${h}:00` }),
    ...t.days.map((d) => {
      const slot = t.slots.find((s) => s.day === d && s.hour === h);
      return el("td", {}, el("ol", {}, ...slot.items.map((i) => el("li", { "data-category": i.category, "data-item": i.item_id, title: i.item_id },
        `${i.title} `, ...(i.category && i.category !== i.title ? [el("span", { class: "cat", text: i.category })] : []),
        ...(from && i.coords ? [el("span", { class: "muted", text: ` ${km(from.at, i.coords).toFixed(1)} km` })] : [])))));
    }))));
}

// -- map: the catalogue's places (grey), the user's (blue), the recommended (orange, numbered by rank), the place
// set (red cross) or else the user's last place before now (black ring). Equirectangular, scaled by cos(latitude)
// so distances look right, over the middle 99% of the catalogue's places; a click sets the place.
function extent() {
  // "the user's area": their places and the place set (not the recommended ones, so a click does not move the
  // map under the mouse); "all places": the middle 99% of the catalogue's places
  const m = state.meta && state.meta.map;
  if (!m) return { lat: [-60, 75], lon: [-180, 180] };
  if ($("map-zoom").value === "user") {
    const pts = state.timeline.filter((e) => e.place).map((e) => e.place);
    const lat = parseFloat($("lat").value), lon = parseFloat($("lon").value);
    if (!isNaN(lat) && !isNaN(lon)) pts.push([lat, lon]);
    if (pts.length) {
      const span = (vals, min) => { const lo = Math.min(...vals), hi = Math.max(...vals), pad = Math.max(min, hi - lo) * 0.6;
                                    return [(lo + hi) / 2 - pad, (lo + hi) / 2 + pad]; };
      return { lat: span(pts.map((q) => q[0]), 0.02), lon: span(pts.map((q) => q[1]), 0.02) };
    }
  }
  return { lat: m.lat, lon: m.lon };
}

function projection() {
  const c = $("map"), { lat, lon } = extent();
  const midLat = (lat[0] + lat[1]) / 2, midLon = (lon[0] + lon[1]) / 2, kx = Math.cos(midLat * Math.PI / 180);
  const w = Math.max(0.01, (lon[1] - lon[0]) * kx), h = Math.max(0.01, lat[1] - lat[0]);
  const scale = 0.94 * Math.min(c.width / w, c.height / h), cx = c.width / 2, cy = c.height / 2;
  return { x: (lo) => cx + (lo - midLon) * kx * scale, y: (la) => cy - (la - midLat) * scale,
           lon: (px) => midLon + (px - cx) / (kx * scale), lat: (py) => midLat - (py - cy) / scale,
           pxPerKm: scale / 111.2 };
}

function drawMap() {
  const c = $("map"), g = c.getContext("2d"), p = projection();
  g.fillStyle = "#f4f7fb"; g.fillRect(0, 0, c.width, c.height);
  const inside = (q) => { const x = p.x(q[1]), y = p.y(q[0]); return x >= 0 && x <= c.width && y >= 0 && y <= c.height; };
  const dot = (q, color, r) => { g.fillStyle = color; g.beginPath(); g.arc(p.x(q[1]), p.y(q[0]), r, 0, 2 * Math.PI); g.fill(); };
  let places = 0, mine = 0, recs = 0;
  if (state.places) {
    g.fillStyle = "#9aa0a6";
    for (const q of state.places) { g.fillRect(p.x(q[1]) - 1, p.y(q[0]) - 1, 2, 2); places++; }
  }
  if (state.recs) {
    g.font = "bold 11px system-ui, sans-serif"; g.textBaseline = "middle";
    state.recs.items.slice().reverse().forEach((i) => {  // the best last, on top
      if (!i.coords) return;
      dot(i.coords, "#e37400", 4.5); if (inside(i.coords)) recs++;
      if (i.rank <= 5) { g.fillStyle = "#1a1a1a"; g.fillText(String(i.rank), p.x(i.coords[1]) + 6, p.y(i.coords[0]) - 6); }
    });
  }
  // the user's places on top, as rings around where the dots are, so a recommended place of theirs shows both
  const seen = new Set();
  for (const e of state.timeline) {
    if (!e.place) continue;
    const key = e.place.join(",");
    if (seen.has(key)) continue;
    seen.add(key); if (inside(e.place)) mine++;
    const x = p.x(e.place[1]), y = p.y(e.place[0]);
    g.lineWidth = 2; g.strokeStyle = "#0b57d0"; g.beginPath(); g.arc(x, y, 6, 0, 2 * Math.PI); g.stroke();
  }
  const lat = parseFloat($("lat").value), lon = parseFloat($("lon").value);
  if (!isNaN(lat) && !isNaN(lon)) {
    const x = p.x(lon), y = p.y(lat);
    g.strokeStyle = "#b3261e"; g.lineWidth = 2.5; g.beginPath();
    g.moveTo(x - 9, y); g.lineTo(x + 9, y); g.moveTo(x, y - 9); g.lineTo(x, y + 9); g.stroke();
  } else {
    const o = origin();
    if (o) { g.strokeStyle = "#1a1a1a"; g.lineWidth = 2; g.beginPath(); g.arc(p.x(o.at[1]), p.y(o.at[0]), 8, 0, 2 * Math.PI); g.stroke(); }
  }
  // a scale bar of a round length, 50 to 125 pixels long
  const lengths = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000];
  const bar = lengths.find((l) => l * p.pxPerKm >= 50) || lengths[lengths.length - 1], bx = 10, by = c.height - 12;
  g.strokeStyle = "#1a1a1a"; g.lineWidth = 2; g.beginPath();
  g.moveTo(bx, by - 4); g.lineTo(bx, by); g.lineTo(bx + bar * p.pxPerKm, by); g.lineTo(bx + bar * p.pxPerKm, by - 4); g.stroke();
  g.fillStyle = "#1a1a1a"; g.font = "11px system-ui, sans-serif"; g.textBaseline = "bottom";
  g.fillText(`${bar} km`, bx + 4, by - 3);
  Object.assign(c.dataset, { places: places, userPlaces: mine, recPlaces: recs });
  const m = state.meta && state.meta.map;
  $("map-note").textContent = !state.meta ? "" : m
    ? `Grey: ${m.places.toLocaleString("en")} places${places < m.places ? ` (${places.toLocaleString("en")} drawn)` : ""}; `
      + `blue rings: ${mine} places of this user's; orange: ${recs} recommended in view (numbers: rank); `
      + (isNaN(lat) || isNaN(lon) ? "ring: the user's last place before now, where the place signal measures from. Click to set a place." : "red cross: the place set.")
    : "This catalogue has no item coordinates (latitude/longitude): no map. Latitude and longitude can still be typed.";
}

$("map").addEventListener("click", (ev) => {
  if (!state.meta) return;
  const c = $("map"), r = c.getBoundingClientRect(), p = projection();
  const px = (ev.clientX - r.left) * c.width / r.width, py = (ev.clientY - r.top) * c.height / r.height;
  $("lon").value = Math.max(-180, Math.min(180, p.lon(px))).toFixed(5);
  $("lat").value = Math.max(-90, Math.min(90, p.lat(py))).toFixed(5);
  drawMap(); schedule(0);
});

async function loadPlaces() {
  try { state.places = (await api("places")).sample; drawMap(); } catch (e) { status(`Map: ${e.message}`, true); }
}

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
  state.user = u; state.timeline = []; $("user-name").textContent = u;
  $("timeline").tBodies[0].replaceChildren(); $("timeline").dataset.user = ""; $("timeline-note").textContent = "";
  for (const b of $("user-results").children) b.setAttribute("aria-current", b.dataset.user === u ? "true" : "false");
  $("prompt-text").textContent = ""; $("prompt-info").textContent = "";
  schedule(0);
}

async function start() {
  try {
    const m = await api("meta");
    state.meta = m;
    $("tz").textContent = m.utc_offset ? `${m.timezone}, ${m.utc_offset}` : m.timezone;
    $("device").replaceChildren(el("option", { value: "", text: "(none)" }), ...m.devices.map((d) => el("option", { value: d, text: d })));
    $("now").value = m.default_now; syncControls();
    $("map").hidden = $("map-controls").hidden = !m.map; $("timeline-h").textContent = m.map ? "Map and timeline" : "Timeline";
    if (m.map) loadPlaces();
    $("rerank").disabled = !m.llm;
    status(`${m.users} users, ${m.items} items; times in ${m.timezone}${m.utc_offset ? ` (${m.utc_offset})` : ""}; data ${m.data_from.replace("T", " ")} to ${m.data_until.replace("T", " ")}; LLM: ${m.llm ? m.llm.backend + " (" + m.llm.strategy + ")" : "none"}.`);
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
$("weekday").addEventListener("input", () => { const d = parseLocal($("now").value); d.setUTCDate(d.getUTCDate() + Number($("weekday").value) - weekdayOf(d)); setNow(d); });
for (const id of ["device", "k", "rerank", "lat", "lon"]) $(id).addEventListener("change", () => schedule());
$("map-zoom").addEventListener("change", drawMap);
$("clear-place").addEventListener("click", () => { $("lat").value = ""; $("lon").value = ""; drawMap(); schedule(0); });

drawMap();
if (sessionStorage.getItem(KEY)) start();
