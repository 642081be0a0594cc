// curate review: the annotator's page. Plain JS, no build step. Talks to /api/* only.
"use strict";
const $ = (id) => document.getElementById(id);
const DEFAULT_KEYS = {
  approve: "a", reject: "r", skip: "s", undo: "u", edit: "e", play: " ", frame_back: ",", frame_forward: ".",
  slower: "[", faster: "]", grid: "g", grid_toggle: "x", grid_all: "*", help: "?",
};
const LABELS = {
  approve: "approve (selection in grid)", reject: "reject (selection in grid)", skip: "skip", undo: "undo last decision",
  edit: "edit caption", play: "play / pause", frame_back: "one frame back", frame_forward: "one frame forward",
  slower: "slower", faster: "faster", grid: "grid / review mode", grid_toggle: "grid: select the focused clip",
  grid_all: "grid: select all / none", help: "show keys",
};
const SPEEDS = [0.25, 0.5, 1, 1.5, 2];
const S = {
  name: localStorage.getItem("curate.review.name") || "",
  keys: Object.assign({}, DEFAULT_KEYS, JSON.parse(localStorage.getItem("curate.review.keys") || "{}")),
  filter: {}, config: null, current: null, mode: "review", grid: [], focus: 0, rejecting: null, busy: false, remap: null,
};

function keyName(k) { return k === " " ? "Space" : k; }
function paintKeys() {
  document.querySelectorAll("kbd[data-key]").forEach((el) => { el.textContent = keyName(S.keys[el.dataset.key] || ""); });
}
function toast(msg, err) {
  const t = $("toast"); t.textContent = msg; t.className = "toast" + (err ? " err" : ""); t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, err ? 5000 : 1800);
}
async function api(path, body) {
  const opt = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opt);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) { const e = new Error((data && data.detail) || r.statusText); e.status = r.status; throw e; }
  return data;
}
function showCounts(c) {
  if (!c) return;
  $("counts").textContent = `done ${c.done} · left ${c.left} · yours ${c.mine}`;
}
function fmt(v) { return typeof v === "number" ? (Math.abs(v) >= 100 ? v.toFixed(1) : (+v.toPrecision(3)).toString()) : String(v); }

// ---------------------------------------------------------------- review view
async function next() {
  if (S.busy) return;
  S.busy = true;
  try {
    const d = await api("/api/lease", Object.assign({ annotator: S.name, n: 1 }, S.filter));
    showCounts(d.counts);
    show(d.clips[0] || null);
  } catch (e) { toast(e.message, true); } finally { S.busy = false; }
}
function show(clip) {
  S.current = clip; S.rejecting = null; $("reasons-box").hidden = true;
  const empty = !clip;
  $("empty").hidden = !empty || S.mode !== "review";
  $("review").hidden = empty || S.mode !== "review";
  if (empty) { $("video").removeAttribute("src"); return; }
  const i = clip.info, v = $("video");
  v.poster = `/api/clips/${clip.clip_id}/thumb.jpg`;  // the stored thumbnail until the clip plays
  v.src = `/api/clips/${clip.clip_id}/video.mp4`;
  v.playbackRate = +$("speed").value; v.dataset.clip = clip.clip_id;
  v.play().catch(() => {});
  $("caption").value = i.caption; $("caption").dataset.orig = i.caption;
  $("reasons").innerHTML = "";
  (i.reasons.length ? i.reasons : ["nothing specific: judge the clip as a whole"]).forEach((r) => {
    const li = document.createElement("li"); li.textContent = r; $("reasons").appendChild(li);
  });
  const sc = $("scores"); sc.innerHTML = "";
  i.scores.forEach((s) => {
    const tr = sc.insertRow();
    tr.insertCell().textContent = s.name.replace(/_/g, " ");
    const v2 = tr.insertCell(); v2.className = "v"; v2.textContent = fmt(s.value);
    const t = tr.insertCell();
    t.innerHTML = s.thresholds.map((x) => `<span class="${x.ok ? "pass" : "fail"}">${x.ok ? "✓" : "✗"} ${x.name} ${fmt(x.value)}</span>`).join("<br>") || '<span class="muted">no threshold</span>';
  });
  const dt = $("details"); dt.innerHTML = "";
  [["source", i.source], ["shot / window", `${i.shot_index} / ${i.window_index}`],
   ["frames", `${i.start_frame}–${i.end_frame} (${i.end_frame - i.start_frame})`],
   ["time", `${i.start_s.toFixed(2)}–${i.end_s.toFixed(2)} s (${i.duration_s.toFixed(2)} s)`],
   ["size", `${i.width}×${i.height} @ ${fmt(i.fps)} fps`], ["camera", i.camera_motion || "–"]].forEach(([k, val]) => {
    const tr = dt.insertRow(); tr.insertCell().textContent = k; tr.insertCell().textContent = val;
  });
  $("source").textContent = `${i.source}: neighbouring clips of the same video (shot boundaries between thumbnails)`;
  const span = $("span"); span.innerHTML = "";
  const t0 = i.video_start_s, len = Math.max(1e-6, i.video_end_s - t0);
  const strip = $("strip"); strip.innerHTML = "";
  i.neighbours.forEach((n) => {
    const seg = document.createElement("div");
    seg.style.left = `${(100 * (n.start_s - t0)) / len}%`; seg.style.width = `${(100 * (n.end_s - n.start_s)) / len}%`;
    if (n.current) seg.className = "cur";
    seg.title = `shot ${n.shot_index}: ${n.start_s.toFixed(2)}–${n.end_s.toFixed(2)} s`;
    span.appendChild(seg);
    const f = document.createElement("figure"); if (n.current) f.className = "cur";
    f.innerHTML = `<img loading="lazy" alt="" src="/api/clips/${n.clip_id}/thumb.jpg"><figcaption>shot ${n.shot_index} · ${n.start_s.toFixed(1)} s</figcaption>`;
    strip.appendChild(f);
  });
}
function captionValue() {
  const c = $("caption").value.trim();
  return c && c !== ($("caption").dataset.orig || "").trim() ? c : null;
}
async function decide(decision, reason) {
  const clip = S.current;
  if (!clip || S.busy) return;
  S.busy = true;
  const body = { annotator: S.name, clip_id: clip.clip_id, token: clip.token, decision };
  if (reason) body.reason = reason;
  const cap = captionValue(); if (cap && decision !== "skip") body.caption = cap;
  try {
    const d = await api("/api/decide", body);
    showCounts(d.counts);
    toast(decision === "approve" ? "approved" : decision === "reject" ? `rejected: ${reason}` : "skipped");
    S.busy = false;
    await next();  // the next clip comes up by itself
  } catch (e) {
    S.busy = false; toast(e.message, true);
    if (e.status === 409) await next();
  }
}
async function undo() {
  try {
    const d = await api("/api/undo", { annotator: S.name });
    showCounts(d.counts);
    if (S.mode === "grid") { await loadGrid(); } else { show(d.clip); }
    toast("undone: the clip is back");
  } catch (e) { toast(e.message, true); }
}
function askReason(then) {
  S.rejecting = then;
  const box = $("reasons-box"), list = $("reason-list");
  list.innerHTML = "";
  S.config.reject_reasons.forEach((r, k) => {
    const li = document.createElement("li"); li.textContent = r; li.onclick = () => pickReason(r); list.appendChild(li);
  });
  box.hidden = false; $("reason-text").value = ""; $("reason-text").focus();
}
function pickReason(r) {
  const then = S.rejecting; S.rejecting = null; $("reasons-box").hidden = true; $("reason-text").blur();
  if (then && r) then(r);
}

// ---------------------------------------------------------------- grid
async function loadGrid() {
  try {
    const d = await api("/api/lease", Object.assign({ annotator: S.name, n: 12 }, S.filter));
    showCounts(d.counts);
    S.grid = d.clips.map((c) => Object.assign(c, { sel: false })); S.focus = 0;
    paintGrid();
  } catch (e) { toast(e.message, true); }
}
function paintGrid() {
  const g = $("grid"); g.innerHTML = "";
  $("empty").hidden = S.grid.length > 0;
  S.grid.forEach((c, k) => {
    const t = document.createElement("div");
    t.className = "tile" + (c.sel ? " sel" : "") + (k === S.focus ? " focus" : "");
    t.dataset.clip = c.clip_id;
    t.innerHTML = `<video muted loop autoplay playsinline preload="auto" poster="/api/clips/${c.clip_id}/thumb.jpg" src="/api/clips/${c.clip_id}/video.mp4"></video>` +
      `<span class="mark">${c.sel ? "✔" : ""}</span><span class="cap"></span>`;
    t.querySelector(".cap").textContent = c.info.caption || `${c.info.source} · shot ${c.info.shot_index}`;
    t.title = c.info.reasons.join("\n");
    t.onclick = () => { c.sel = !c.sel; S.focus = k; paintSelection(); };
    g.appendChild(t);
  });
  $("grid-info").textContent = `${S.grid.length} clips leased to you`;
}
function paintSelection() {
  document.querySelectorAll("#grid .tile").forEach((t, k) => {
    const c = S.grid[k];
    t.classList.toggle("sel", c.sel); t.classList.toggle("focus", k === S.focus);
    t.querySelector(".mark").textContent = c.sel ? "✔" : "";
  });
  const n = S.grid.filter((c) => c.sel).length;
  $("grid-info").textContent = `${n} of ${S.grid.length} selected`;
}
async function gridDecide(decision, reason) {
  const chosen = S.grid.filter((c) => c.sel);
  if (!chosen.length) { toast("select clips first (click, or arrows and " + keyName(S.keys.grid_toggle) + ")", true); return; }
  try {
    const d = await api("/api/decide_many", { annotator: S.name, decision, reason: reason || null,
      clips: chosen.map((c) => ({ clip_id: c.clip_id, token: c.token })) });
    showCounts(d.counts);
    toast(`${decision === "approve" ? "approved" : "rejected"} ${d.done.length}` + (d.stale.length ? `, ${d.stale.length} no longer yours` : ""));
    await loadGrid();
  } catch (e) { toast(e.message, true); }
}
function gridMove(dk) {
  if (!S.grid.length) return;
  const cols = Math.max(1, Math.round($("grid").clientWidth / ($("grid").firstChild.clientWidth + 10)));
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols }[dk];
  S.focus = Math.min(S.grid.length - 1, Math.max(0, S.focus + step)); paintSelection();
}

// ---------------------------------------------------------------- modes, keys
function setMode(m) {
  S.mode = m;
  $("mode-review").classList.toggle("on", m === "review"); $("mode-grid").classList.toggle("on", m === "grid");
  $("grid-view").hidden = m !== "grid";
  $("review").hidden = m !== "review";
  if (m === "grid") { $("video").pause(); loadGrid(); } else { $("grid").innerHTML = ""; next(); }
}
function frame(dir) {
  const v = $("video"); if (!S.current) return;
  v.pause(); v.currentTime = Math.max(0, v.currentTime + dir / (S.current.info.fps || 25));
}
function speed(dir) {
  const k = SPEEDS.indexOf(+$("speed").value), n = SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, k + dir))];
  $("speed").value = String(n); $("video").playbackRate = n; toast(`speed ${n}×`);
}
function action(name) {
  const grid = S.mode === "grid";
  switch (name) {
    case "approve": return grid ? gridDecide("approve") : decide("approve");
    case "reject": return askReason((r) => (grid ? gridDecide("reject", r) : decide("reject", r)));
    case "skip": return grid ? null : decide("skip");
    case "undo": return undo();
    case "edit": if (!grid) { $("caption").focus(); } return null;
    case "play": { const v = $("video"); if (v.paused) v.play(); else v.pause(); return null; }
    case "frame_back": return frame(-1);
    case "frame_forward": return frame(1);
    case "slower": return speed(-1);
    case "faster": return speed(1);
    case "grid": return setMode(grid ? "review" : "grid");
    case "grid_toggle": if (grid && S.grid[S.focus]) { S.grid[S.focus].sel = !S.grid[S.focus].sel; paintSelection(); } return null;
    case "grid_all": if (grid) { const all = !S.grid.every((c) => c.sel); S.grid.forEach((c) => { c.sel = all; }); paintSelection(); } return null;
    case "help": return openKeys();
  }
  return null;
}
document.addEventListener("keydown", (ev) => {
  if (!S.name || !S.config) return;
  if (S.remap) { ev.preventDefault(); return remapTo(ev.key); }
  const tag = (ev.target && ev.target.tagName) || "";
  if (S.rejecting) {
    if (ev.key === "Escape") { S.rejecting = null; $("reasons-box").hidden = true; return; }
    if (ev.key === "Enter") { ev.preventDefault(); return pickReason($("reason-text").value.trim()); }
    if (/^[1-9]$/.test(ev.key) && !$("reason-text").value) {
      const r = S.config.reject_reasons[+ev.key - 1]; if (r) { ev.preventDefault(); pickReason(r); }
    }
    return;
  }
  if (tag === "TEXTAREA" || tag === "INPUT" || tag === "SELECT") {
    if (ev.key === "Escape") ev.target.blur();
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && tag === "TEXTAREA") { ev.preventDefault(); ev.target.blur(); decide("approve"); }
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (S.mode === "grid" && ev.key.startsWith("Arrow")) { ev.preventDefault(); return gridMove(ev.key); }
  const name = Object.keys(S.keys).find((k) => S.keys[k] === ev.key);
  if (name) { ev.preventDefault(); action(name); }
});

function openKeys() {
  const tb = $("keys-table"); tb.innerHTML = "";
  Object.keys(DEFAULT_KEYS).forEach((k) => {
    const tr = tb.insertRow(); tr.insertCell().textContent = LABELS[k];
    const kb = document.createElement("kbd"); kb.textContent = keyName(S.keys[k]); kb.dataset.action = k;
    kb.onclick = () => { S.remap = k; document.querySelectorAll("#keys-table kbd").forEach((x) => x.classList.remove("wait")); kb.classList.add("wait"); };
    tr.insertCell().appendChild(kb);
  });
  $("keys").hidden = false;
}
function remapTo(key) {
  const k = S.remap; S.remap = null;
  if (key !== "Escape" && key.length === 1) {
    const clash = Object.keys(S.keys).find((x) => x !== k && S.keys[x] === key);
    if (clash) S.keys[clash] = S.keys[k];  // swap, so no action loses its key
    S.keys[k] = key; localStorage.setItem("curate.review.keys", JSON.stringify(S.keys));
  }
  paintKeys(); openKeys();
}
$("keys-btn").onclick = openKeys;
$("keys-close").onclick = () => { $("keys").hidden = true; S.remap = null; };
$("keys-reset").onclick = () => { S.keys = Object.assign({}, DEFAULT_KEYS); localStorage.removeItem("curate.review.keys"); paintKeys(); openKeys(); };
$("approve").onclick = () => action("approve");
$("reject").onclick = () => action("reject");
$("skip").onclick = () => action("skip");
$("undo").onclick = () => action("undo");
$("grid-approve").onclick = () => action("approve");
$("grid-reject").onclick = () => action("reject");
$("mode-review").onclick = () => setMode("review");
$("mode-grid").onclick = () => setMode("grid");
$("play").onclick = () => action("play");
$("back").onclick = () => frame(-1);
$("fwd").onclick = () => frame(1);
$("speed").onchange = () => { $("video").playbackRate = +$("speed").value; $("speed").blur(); };
$("video").addEventListener("timeupdate", () => {
  const v = $("video"); $("time").textContent = `${v.currentTime.toFixed(2)} / ${(v.duration || 0).toFixed(2)} s`;
});
setInterval(() => {  // keep the leases of the clips on screen
  const held = S.mode === "grid" ? S.grid : (S.current ? [S.current] : []);
  held.forEach((c) => api("/api/renew", { annotator: S.name, clip_id: c.clip_id, token: c.token }).catch(() => {}));
}, 60000);

function setupFilters() {
  const fill = (id, values) => values.forEach((v) => { const o = document.createElement("option"); o.value = o.textContent = v; $(id).appendChild(o); });
  fill("f-reason", S.config.filter_reasons); fill("f-video", S.config.videos); fill("f-score", S.config.scores);
  $("filters").hidden = false;
  $("f-apply").onclick = () => {
    const f = {};
    if ($("f-reason").value) f.reason = $("f-reason").value;
    if ($("f-video").value) f.video = $("f-video").value;
    const sc = $("f-score").value, lo = $("f-lo").value, hi = $("f-hi").value;
    if (sc && (lo !== "" || hi !== "")) f.scores = { [sc]: [lo === "" ? null : +lo, hi === "" ? null : +hi] };
    S.filter = f; toast("filter set: it applies from the next clip");
    document.activeElement.blur();
    if (S.mode === "grid") loadGrid(); else if (!S.current) next();
  };
  $("f-clear").onclick = () => { ["f-reason", "f-video", "f-score", "f-lo", "f-hi"].forEach((id) => { $(id).value = ""; }); $("f-apply").onclick(); };
}
async function start() {
  $("login").hidden = true; $("who").textContent = S.name;
  try { S.config = await api("/api/config"); } catch (e) { toast(e.message, true); return; }
  $("output").textContent = S.config.output;
  setupFilters(); paintKeys(); setMode("review");
}
$("login-form").onsubmit = (ev) => {
  ev.preventDefault();
  const n = $("name").value.trim(); if (!n) return;
  S.name = n; localStorage.setItem("curate.review.name", n); start();
};
$("who").onclick = () => { $("name").value = S.name; $("login").hidden = false; $("name").focus(); };
paintKeys();
if (S.name) start(); else $("name").focus();
