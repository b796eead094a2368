// The console page: vanilla JS, talks only to its own server (/api/*), the key in sessionStorage.
"use strict";
const $ = sel => document.querySelector(sel);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) (k in e && k !== "style") ? e[k] = v : e.setAttribute(k, v);
  for (const kid of kids) e.append(kid instanceof Node ? kid : String(kid ?? ""));
  return e;
};
const fmt = v => v == null ? "-" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : String(v);
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];
const state = { runs: [], job: null, poll: null, monitor: null, study: null };

function flash(msg) { $("#flash").textContent = msg || ""; }

async function api(path, body, raw) {
  const headers = {};
  const key = sessionStorage.getItem("lmkConsoleKey");
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch("/api" + path, { method: body === undefined ? "GET" : "POST", headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) { $("#keybox").hidden = false; throw new Error(t("err.key")); }
  if (!r.ok) { let m = r.statusText; try { m = (await r.json()).error.message; } catch (e) { /* not JSON */ } throw new Error(m); }
  return raw ? r : r.json();
}
const guarded = fn => async (...a) => { try { flash(""); await fn(...a); } catch (e) { flash(e.message); } };

// ---- tabs, language, key
function showTab(name) {
  if (name !== "tune") clearInterval(state.study);
  document.querySelectorAll(".tab").forEach(s => { s.hidden = s.id !== "tab-" + name; });
  document.querySelectorAll("#tabs button").forEach(b => b.classList.toggle("active", b.dataset.tab === name));
  ({ runs: loadRuns, new: loadSystem, play: loadPlayRuns, tune: loadStudies }[name] || (() => {}))();
}

// ---- charts
function drawCurves(canvas, series) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, P = 40;
  ctx.clearRect(0, 0, W, H);
  const pts = series.flatMap(s => s.points);
  canvas.dataset.points = String(pts.length);
  if (!pts.length) return;
  const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs) || 1, Math.min(...ys), Math.max(...ys)];
  const X = x => P + (x - x0) / ((x1 - x0) || 1) * (W - 2 * P), Y = y => H - P - (y - y0) / ((y1 - y0) || 1) * (H - 2 * P);
  ctx.strokeStyle = "#999"; ctx.strokeRect(P, P / 2, W - 2 * P, H - 1.5 * P);
  ctx.fillStyle = "#333"; ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(fmt(y1), 2, Y(y1) + 4); ctx.fillText(fmt(y0), 2, Y(y0)); ctx.fillText(String(x1), W - P - 10, H - P + 14);
  let legend = P + 8;
  series.forEach((s, i) => {
    ctx.strokeStyle = ctx.fillStyle = s.color || COLORS[i % COLORS.length]; ctx.setLineDash(s.dash ? [5, 4] : []);
    if (!s.dots) { ctx.beginPath(); s.points.forEach(([x, y], j) => j ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))); ctx.stroke(); }
    if (s.dots || s.marks || s.points.length === 1) s.points.forEach(([x, y]) => { ctx.beginPath(); ctx.arc(X(x), Y(y), s.dots ? 3.5 : 2.5, 0, 2 * Math.PI); ctx.fill(); });
    if (s.name && legend < W - P - 40) { ctx.fillText(s.name, legend, P / 2 + 14); legend += ctx.measureText(s.name).width + 24; }
  });
  ctx.setLineDash([]);
}
const trainPoints = h => h.filter(r => "train_loss" in r).map(r => [r.step, r.train_loss]);
const evalPoints = h => h.filter(r => r.eval && "loss" in r.eval).map(r => [r.step, r.eval.loss]);

// ---- runs
const COLS = ["run", "task", "model", "method", "metric", "validation", "test", "size", "date", "status"];
async function loadRuns() {
  state.runs = await api("/runs");
  $("#runs-table thead").replaceChildren(el("tr", {}, el("th"), ...COLS.map(c => el("th", {}, t("col." + c)))));
  const body = $("#runs-table tbody");
  body.replaceChildren(...state.runs.map(r => el("tr", { className: "clickable", "data-run": r.id },
    el("td", {}, el("input", { type: "checkbox", value: r.id, className: "pick" })),
    el("td", {}, el("a", { className: "run-link", onclick: guarded(() => openReport(r.id)) }, r.id)),
    el("td", {}, r.task), el("td", {}, r.model.length > 30 ? "…" + r.model.slice(-29) : r.model), el("td", {}, r.method),
    el("td", {}, r.metric || "-"), el("td", {}, fmt(r.validation)), el("td", {}, fmt(r.test)),
    el("td", {}, r.size_bytes ? (r.size_bytes / 1048576).toFixed(1) + " MB" : "-"), el("td", {}, r.date),
    el("td", { className: "status" }, r.status + (r.detail && r.status !== "done" ? " (" + r.detail + ")" : "")))));
  if (!state.runs.length) body.append(el("tr", {}, el("td", { colSpan: 11 }, t("runs.none"))));
}

function table(head, rows) {
  return el("table", {}, el("tr", {}, ...head.map(h => el("th", {}, h))), ...rows.map(r => el("tr", {}, ...r.map(c => el("td", {}, fmt(c))))));
}

async function imageFrom(path) {
  const blob = await (await api(path, undefined, true)).blob();
  return el("img", { src: URL.createObjectURL(blob), alt: path.split("name=")[1] || "" });
}

async function openReport(id) {
  const rep = await api("/report?run=" + encodeURIComponent(id));
  const box = $("#report"); box.hidden = false; $("#compare").hidden = true;
  const kids = [el("h2", {}, id + " — " + rep.row.status)];
  const splits = Object.keys(rep.metrics);
  const names = [...new Set(splits.flatMap(s => Object.keys(rep.metrics[s])))];
  kids.push(el("h3", {}, t("report.metrics")), table(["", ...splits], names.map(n => [n, ...splits.map(s => rep.metrics[s][n])])));
  for (const [split, cm] of Object.entries(rep.confusion)) {
    kids.push(el("h3", {}, t("report.confusion") + " (" + split + ")"),
      el("table", { className: "confusion" }, el("tr", {}, el("th", {}, t("report.gold")), ...cm.labels.map(l => el("th", {}, l))),
        ...cm.matrix.map((row, i) => el("tr", {}, el("th", {}, cm.labels[i] ?? i), ...row.map(v => el("td", {}, v))))));
  }
  const hist = await api("/history?run=" + encodeURIComponent(id));
  const canvas = el("canvas", { width: 640, height: 240, id: "report-canvas" });
  kids.push(el("h3", {}, t("report.curve")), canvas);
  if (rep.errors.rows.length) kids.push(el("h3", {}, t("report.errors")), table(rep.errors.columns, rep.errors.rows));
  const plots = el("div", { className: "plots" });
  kids.push(el("h3", {}, t("report.plots")), plots);
  box.replaceChildren(...kids);
  drawCurves(canvas, [{ name: t("job.train"), points: trainPoints(hist.history) }, { name: t("job.eval"), points: evalPoints(hist.history), dash: true }]);
  for (const p of rep.plots) plots.append(await imageFrom("/plot?run=" + encodeURIComponent(id) + "&name=" + encodeURIComponent(p)));
}

async function compareRuns() {
  const ids = [...document.querySelectorAll(".pick:checked")].map(c => c.value);
  if (ids.length < 2) { flash(t("compare.need")); return; }
  const c = await api("/compare?runs=" + ids.map(encodeURIComponent).join(","));
  $("#report").hidden = true; $("#compare").hidden = false;
  $("#compare-table").replaceChildren(...table(["", ...c.runs], Object.entries(c.metrics).map(([k, v]) => [k, ...v])).childNodes);
  drawCurves($("#compare-canvas"), c.histories.map((h, i) => ({ name: c.runs[i], points: trainPoints(h) })));
  const rows = Object.entries(c.settings).map(([k, v]) => [k, ...v.map(x => JSON.stringify(x))]);
  $("#compare-settings").replaceChildren(rows.length ? table([t("report.setting"), ...c.runs], rows) : "");
}

// ---- new run
const EXAMPLE = "task: {type: classification}\ndata: {train: data/train.csv, validation: data/dev.csv}\nmodel: {name: minilm}\ntuning: {method: lora}\ntrain: {epochs: 1, batch_size: 16}\n";
async function loadSettings() {
  const s = await api("/settings");
  if (s.server && !state.serverSet) {  // console --server: the playground's and monitor's default server
    state.serverSet = true; $("#pg-url").value = $("#mon-url").value = s.server;
    $("#pg-source").value = "served"; setSource();
  }
}
async function loadSystem() {
  const s = await api("/system");
  $("#system-info").textContent = t("new.where", { ...s, gpu: s.gpu || "no GPU" });
}
function numberLines(bad) {
  const n = $("#spec-editor").value.split("\n").length;
  $("#spec-lines").replaceChildren(...Array.from({ length: n }, (_, i) => el("div", { className: bad.has(i + 1) ? "bad" : "" }, i + 1)));
}
async function checkSpec() {
  const r = await api("/spec/check", { text: $("#spec-editor").value, data: true });
  showProblems(r.ok ? [] : r.problems, r.ok);
  return r.ok;
}
function showProblems(problems, ok) {
  numberLines(new Set(problems.map(p => p.line).filter(Boolean)));
  $("#spec-problems").replaceChildren(...(ok ? [el("li", { className: "ok" }, t("new.ok"))] : problems.map(p =>
    el("li", { "data-line": p.line ?? "" }, (p.line ? t("new.line") + " " + p.line + ": " : "") + p.what + (p.fix ? "\n  " + t("new.fix") + ": " + p.fix : "")))));
}
let debounce = null;
function specTyped() { numberLines(new Set()); clearTimeout(debounce); debounce = setTimeout(guarded(checkSpec), 800); }

async function startJob(resume) {
  const name = $("#run-name").value.trim();
  if (!resume && !(await checkSpec())) return;
  state.job = resume ? await api("/jobs/" + encodeURIComponent(name) + "/resume", {})
    : await api("/jobs", { name, text: $("#spec-editor").value });
  $("#job-status").textContent = t("job.starting");
  clearInterval(state.poll); state.poll = setInterval(guarded(pollJob), 1000);
  setJobButtons(true);
}
function setJobButtons(running) { $("#stop-btn").disabled = !running; $("#resume-btn").disabled = running; $("#start-btn").disabled = running; }
async function pollJob() {
  const name = state.job.name;
  const job = (await api("/jobs")).find(j => j.name === name) || state.job;
  $("#job-log").textContent = job.log;
  let hist = null;
  try { hist = await api("/history?run=" + encodeURIComponent(name)); } catch (e) { /* folder not made yet */ }
  if (hist) {
    drawCurves($("#live-canvas"), [{ name: t("job.train"), points: trainPoints(hist.history) }, { name: t("job.eval"), points: evalPoints(hist.history), dash: true }]);
    if (job.running && hist.last.step != null) $("#job-status").textContent = t("job.running", { step: hist.last.step, total: hist.total_steps ?? "?" });
  }
  if (!job.running) {
    clearInterval(state.poll);
    const run = (await api("/runs")).find(r => r.id === name);
    $("#job-status").textContent = t("job.ended", { code: job.exit_code, status: run ? run.status : "-" });
    setJobButtons(false);
  }
}
async function stopJob() { state.job = await api("/jobs/" + encodeURIComponent(state.job.name) + "/stop", {}); await pollJob(); }

// ---- playground
async function loadPlayRuns() {
  const runs = await api("/runs");
  const keep = $("#pg-run").value;
  $("#pg-run").replaceChildren(...runs.filter(r => r.size_bytes > 0).map(r => el("option", { value: r.id }, r.id + " (" + r.task + ")")));
  if (keep) $("#pg-run").value = keep;
}
function shade(score, max) {
  const a = Math.min(1, Math.abs(score) / (max || 1));
  return score >= 0 ? `rgba(214,39,40,${a.toFixed(2)})` : `rgba(31,119,180,${a.toFixed(2)})`;
}
// a served model: every call goes to the console, which forwards it to the server (/api/served)
const servedMode = () => $("#pg-source").value === "served";
function setSource() {
  $("#pg-run-box").hidden = $("#search-index").hidden = servedMode(); $("#pg-served-box").hidden = !servedMode(); state.served = null;
}
const served = (path, body, raw) => api("/served", { url: $("#pg-url").value, key: $("#pg-key").value || null, path, body }, raw);
async function connect() {
  const m = (await served("/v1/models")).data[0];
  state.served = m;
  $("#pg-served-info").textContent = t("play.served", { id: m.id, task: m.task });
  return m;
}
async function predictServed(text) {
  const m = state.served || await connect();
  if (m.task === "ner") return { task: "ner", prediction: (await served("/v1/entities", { texts: [text] })).results[0] };
  if (m.task !== "classification") throw new Error(t("play.notclassifier", { task: m.task }));
  const prediction = (await served("/v1/classify", { texts: [text] })).results[0];
  let explanation = null;
  try { explanation = (await served("/v1/explain", { texts: [text] })).results[0]; } catch (e) { /* a server without /v1/explain */ }
  return { task: "classification", prediction, explanation };
}
async function classify() {
  const text = $("#pg-text").value;
  const r = servedMode() ? await predictServed(text) : await api("/predict", { run: $("#pg-run").value, text });
  const out = $("#pg-result"), p = r.prediction;
  if (r.task === "ner") {
    const ents = p.entities || [];
    out.replaceChildren(ents.length ? el("div", {}, ...ents.map(e => el("mark", { className: "entity", title: fmt(e.score) }, e.text + " [" + e.type + "] "))) : t("play.none"));
    return;
  }
  const kids = [el("p", { id: "pg-label" }, t("play.label") + ": " + p.label + " (" + fmt(p.score) + ")")];
  if (r.explanation) {
    const words = r.explanation.words, max = Math.max(...words.map(w => Math.abs(w.score)));
    kids.push(el("p", { id: "pg-words" }, ...words.flatMap(w => [el("span", { className: "attr-word", title: fmt(w.score),
      style: "background:" + shade(w.score, max) }, w.word), " "])));
  }
  out.replaceChildren(...kids);
}
async function chat(ev) {
  ev.preventDefault();
  const text = $("#chat-input").value.trim();
  if (!text) return;
  state.chat = state.chat || [];
  state.chat.push({ role: "user", content: text });
  $("#chat-input").value = "";
  const log = $("#chat-log"), reply = el("div", { className: "msg-assistant" });
  log.append(el("div", { className: "msg-user" }, "> " + text), reply);
  let said = "";
  const piece = text => { said += text; reply.textContent = said; reply.dataset.pieces = String(+(reply.dataset.pieces || 0) + 1); };
  if (servedMode()) {  // the server's OpenAI-style chunks, relayed by the console as they come
    const r = await served("/v1/chat/completions", { messages: state.chat, max_tokens: 64, temperature: 0, stream: true }, true);
    await readEvents(r, data => {
      if (data === "[DONE]") { reply.dataset.done = "1"; return; }
      const ev = JSON.parse(data);
      if (ev.error) throw new Error(ev.error.message || String(ev.error));
      const c = ev.choices && ev.choices[0] && ev.choices[0].delta.content;
      if (c) piece(c);
    });
  } else {
    const r = await api("/chat", { run: $("#pg-run").value, messages: state.chat }, true);
    await readEvents(r, data => {
      const ev = JSON.parse(data);
      if (ev.text) piece(ev.text);
      if (ev.done) reply.dataset.done = "1";
    });
  }
  state.chat.push({ role: "assistant", content: said });
}
async function readEvents(response, onData) {  // server-sent events: each "data: ..." as it arrives
  const reader = response.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, cut); buf = buf.slice(cut + 2);
      if (line.startsWith("data: ")) onData(line.slice(6));
    }
  }
}
async function search() {
  const r = servedMode() ? { hits: (await served("/v1/search", { query: $("#search-query").value, k: 5 })).data }
    : await api("/search", { index: $("#search-index").value, query: $("#search-query").value });
  $("#search-hits").replaceChildren(...r.hits.map(h => el("li", {}, el("b", {}, fmt(h.score) + " " + h.source + ": "), h.text)));
}

// ---- monitor
async function watchMonitor() {
  clearInterval(state.monitor);
  const tick = guarded(async () => {
    const r = await api("/monitor", { url: $("#mon-url").value, key: $("#mon-key").value || null });
    showMonitor(r.monitor);
  });
  await tick(); state.monitor = setInterval(tick, 2000);
}
function showMonitor(m) {
  const out = $("#mon-out");
  if (m.status === "off") { out.replaceChildren(t("mon.off")); return; }
  const kids = [];
  for (const [name, w] of Object.entries(m.windows || {})) {
    kids.push(el("h3", {}, t("mon.window") + " " + name + " — " + t("mon.count") + ": " + w.count));
    kids.push(el("div", { className: "bars" }, ...Object.entries(w.label_shares).map(([l, s]) =>
      el("div", {}, el("span", { style: "width:" + Math.round(200 * s) + "px" }), " " + l + " " + (100 * s).toFixed(1) + "%"))));
    kids.push(el("p", {}, t("mon.confidence") + ": mean " + fmt(w.confidence.mean) + ", p10 " + fmt(w.confidence.p10) + ", p50 " + fmt(w.confidence.p50)));
  }
  const rules = m.alerts || [], recent = (m.recent_alerts || []).slice(-10);
  if (rules.length) kids.push(el("h3", {}, t("mon.alerts")), el("table", { id: "mon-rules" },
    el("tr", {}, ...["mon.rule", "mon.when", "mon.state", "mon.value", "mon.fired"].map(k => el("th", {}, t(k)))),
    ...rules.map(a => el("tr", { className: "alert-" + a.state, "data-rule": a.name }, ...[a.name, a.rule, t("mon.state." + a.state), a.value, a.fired].map(v => el("td", {}, fmt(v)))))));
  if (recent.length) kids.push(el("h3", {}, t("mon.recent")), el("ul", { id: "mon-recent" }, ...recent.reverse().map(a => el("li", {
    className: "alert-" + a.status, "data-rule": a.labels.alertname }, el("b", {}, t("mon.state." + a.status) + " · " + a.labels.severity + " · " + a.labels.alertname),
    " " + a.startsAt + " — " + a.annotations.summary + " (" + t("mon.value") + " " + fmt(a.value) + ", " + a.count + " " + t("mon.count") + ")"))));
  out.replaceChildren(...kids);
}

// ---- tuning (lmkernel tune studies)
async function loadStudies() {
  const s = await api("/studies");
  $("#studies").replaceChildren(...(s.length ? s.map(x => el("li", {}, el("a", { className: "run-link study-link", "data-study": x.id,
    onclick: guarded(() => openStudy(x.id)) }, x.id), " — " + t("tune.trials", { n: x.trials }) + (x.best ? ", best.yaml" : ""))) : [el("li", {}, t("tune.none"))]));
}
async function openStudy(id) {
  clearInterval(state.study);
  const tick = guarded(async () => showStudy(await api("/study?id=" + encodeURIComponent(id))));
  await tick(); state.study = setInterval(tick, 1500);  // while the Tuning view is open (showTab stops it)
}
const PARAM = v => typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(3) : String(v);
function showStudy(s) {
  $("#study").hidden = false;
  $("#study-title").textContent = s.id + " — " + (s.metric || "?") + " (" + t("tune." + s.direction) + ")";
  $("#study-status").textContent = (s.searching ? t("tune.searching") : s.finished ? t("tune.finished") : t("tune.idle")) + " · " +
    Object.entries(s.counts).map(([k, n]) => n + " " + t("tune.state." + k)).join(", ");
  $("#study-best").textContent = s.best ? t("tune.best", { n: s.best.number, value: fmt(s.best.value) }) + " " +
    Object.entries(s.best.params).map(([k, v]) => k + "=" + PARAM(v)).join(" ") : t("tune.nobest");
  drawCurves($("#tune-canvas"), [{ name: t("tune.value"), points: s.history, dots: true }, { name: t("tune.bestline"), points: s.best_so_far, color: "#d62728" }]);
  drawCurves($("#tune-steps"), s.trials.filter(x => x.intermediate.length).map(x => ({ name: "#" + x.number + (x.state === "running" ? "*" : ""),
    points: x.intermediate, dash: x.state === "pruned", marks: true })));
  const keys = [...new Set(s.trials.flatMap(x => Object.keys(x.params)))];
  const head = el("tr", {}, ...["#", t("tune.col.state"), ...keys, s.metric || t("tune.value"), t("tune.col.reached"), t("tune.col.cpu")].map(h => el("th", {}, h)));
  $("#trials-table").replaceChildren(head, ...s.trials.slice().reverse().map(x => el("tr", { className: "trial " + x.state, "data-trial": x.number },
    el("td", {}, x.run ? el("a", { className: "run-link", onclick: guarded(() => { showTab("runs"); return openReport(x.run); }) }, x.number) : x.number),
    el("td", { className: "state" }, t("tune.state." + x.state) + (x.progress && x.progress.step != null ? " (" + x.progress.step + "/" + (x.progress.total_steps ?? "?") + ")" : "")),
    ...keys.map(k => el("td", {}, x.params[k] == null ? "-" : PARAM(x.params[k]))), el("td", {}, fmt(x.value)),
    el("td", {}, fmt(x.reached_pct_epoch)), el("td", {}, fmt(x.cpu_seconds)))));
}

// ---- wiring
document.querySelectorAll("#tabs button").forEach(b => b.addEventListener("click", guarded(() => showTab(b.dataset.tab))));
$("#lang").addEventListener("click", () => { LANG = LANG === "zh" ? "en" : "zh"; sessionStorage.setItem("lmkConsoleLang", LANG); applyLanguage(); loadRuns().catch(() => {}); });
$("#key-form").addEventListener("submit", ev => { ev.preventDefault(); sessionStorage.setItem("lmkConsoleKey", $("#key-input").value); $("#keybox").hidden = true; guarded(loadRuns)(); guarded(loadSettings)(); });
$("#refresh-runs").addEventListener("click", guarded(loadRuns));
$("#compare-btn").addEventListener("click", guarded(compareRuns));
$("#check-btn").addEventListener("click", guarded(checkSpec));
$("#start-btn").addEventListener("click", guarded(() => startJob(false)));
$("#resume-btn").addEventListener("click", guarded(() => startJob(true)));
$("#stop-btn").addEventListener("click", guarded(stopJob));
$("#spec-editor").addEventListener("input", specTyped);
$("#pg-classify").addEventListener("click", guarded(classify));
$("#pg-source").addEventListener("change", setSource);
$("#pg-connect").addEventListener("click", guarded(connect));
$("#pg-url").addEventListener("change", () => { state.served = null; });
$("#chat-form").addEventListener("submit", guarded(chat));
$("#search-btn").addEventListener("click", guarded(search));
$("#mon-start").addEventListener("click", guarded(watchMonitor));
$("#spec-editor").value = EXAMPLE; numberLines(new Set());
applyLanguage();
guarded(() => showTab("runs"))();
guarded(loadSettings)();
