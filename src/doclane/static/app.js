// doclane chat page: upload a document with a question, follow the answer over the WebSocket.
"use strict";

const API = (
  window.DOCLANE_API ||
  document.querySelector('meta[name="doclane-api"]')?.content ||
  location.origin
).replace(/\/+$/, "");
const WS_URL = `${API.replace(/^http/, "ws")}/ws`;
const RECONNECT_DELAY_MS = 3000;
const MAX_RECONNECTS = 5;
const JOBS_KEY = "doclane.jobs";
const THEME_KEY = "doclane.theme";
const API_KEY = "doclane.key"; // the user's API key, when the server asks for one
const CLOSE_POLICY_VIOLATION = 1008; // the socket's key was refused
const MAX_SAVED_JOBS = 50;
const FINAL = new Set(["completed", "failed", "cancelled"]);
const HISTORY_PAGE = 20; // past jobs per GET /api/jobs

const $ = (id) => document.getElementById(id);

// --- safe Markdown ------------------------------------------------------------------------------
// The text is HTML-escaped first; only the tags written below are ever produced.

function escapeHtml(text) {
  const entities = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  return text.replace(/[&<>"']/g, (c) => entities[c]);
}

function inline(escaped) {
  return escaped
    .split(/(`[^`]+`)/)
    .map((part, i) =>
      i % 2
        ? `<code>${part.slice(1, -1)}</code>`
        : part
            .replace(/\*\*(\S(?:.*?\S)?)\*\*/g, "<strong>$1</strong>")
            .replace(/\*(\S(?:.*?\S)?)\*/g, "<em>$1</em>"),
    )
    .join("");
}

// A table's rows ("| a | b |"); the "|---|" row after the first makes that one the header.
function renderTable(rows) {
  const cells = (row) => row.replace(/^\s*\|/, "").replace(/\|\s*$/, "").split("|");
  const isRule = (row) => /^\s*\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*$/.test(row);
  const head = rows.length > 1 && isRule(rows[1]) ? rows[0] : null;
  const body = head ? rows.slice(2) : rows;
  const tr = (row, tag) =>
    `<tr>${cells(row).map((cell) => `<${tag}>${inline(cell.trim())}</${tag}>`).join("")}</tr>`;
  const thead = head ? `<thead>${tr(head, "th")}</thead>` : "";
  const rowsHtml = body.filter((row) => !isRule(row)).map((row) => tr(row, "td")).join("");
  return `<table>${thead}<tbody>${rowsHtml}</tbody></table>`;
}

function renderMarkdown(text) {
  const html = [];
  let paragraph = [];
  let list = null; // { tag: "ul" | "ol", items: [] }
  let code = null; // lines of an open ``` block
  let table = []; // rows of a "| … |" table
  let quote = []; // lines of a "> …" quote
  const flush = () => {
    if (paragraph.length) html.push(`<p>${paragraph.map(inline).join("<br>")}</p>`);
    if (list) {
      const items = list.items.map((item) => `<li>${inline(item)}</li>`).join("");
      html.push(`<${list.tag}>${items}</${list.tag}>`);
    }
    if (table.length) html.push(renderTable(table));
    if (quote.length) html.push(`<blockquote>${quote.map(inline).join("<br>")}</blockquote>`);
    paragraph = [];
    list = null;
    table = [];
    quote = [];
  };
  for (const line of escapeHtml(text).split("\n")) {
    if (line.trimStart().startsWith("```")) {
      if (code) html.push(`<pre><code>${code.join("\n")}</code></pre>`);
      else flush();
      code = code ? null : [];
    } else if (code) {
      code.push(line);
    } else if (!line.trim()) {
      flush();
    } else if (line.trimStart().startsWith("|")) {
      if (!table.length) flush();
      table.push(line);
    } else if (line.startsWith("&gt;")) { // the text is escaped already: ">" arrives as "&gt;"
      if (!quote.length) flush();
      quote.push(line.replace(/^&gt;\s?/, ""));
    } else {
      if (table.length || quote.length) flush();
      const item = line.match(/^\s*(?:([-*+])|\d+[.)])\s+(.*)$/);
      const tag = item && (item[1] ? "ul" : "ol");
      if (item ? paragraph.length || list?.tag !== tag : list) flush();
      if (item) (list ??= { tag, items: [] }).items.push(item[2]);
      else paragraph.push(line);
    }
  }
  flush();
  if (code) html.push(`<pre><code>${code.join("\n")}</code></pre>`); // still streaming
  return html.join("");
}

// --- jobs: state, persistence, rendering --------------------------------------------------------

const jobs = new Map(); // job_id -> job
const dirty = new Set();

function newJob(fields) {
  return { id: null, prompt: "", fileName: "", seq: 0, status: "pending", progress: 0,
    stage: "", text: "", error: "", view: null, ...fields };
}

function saveJobs() {
  const saved = [...jobs.values()]
    .slice(-MAX_SAVED_JOBS)
    .map(({ id, prompt, fileName, seq, error }) => ({ id, prompt, fileName, seq, error }));
  localStorage.setItem(JOBS_KEY, JSON.stringify(saved));
}

function loadSavedJobs() {
  try {
    return JSON.parse(localStorage.getItem(JOBS_KEY)) || [];
  } catch {
    return [];
  }
}

function addView(job) {
  const view = $("turn-template").content.firstElementChild.cloneNode(true);
  view.querySelector(".file-badge").textContent = fileLabel(job.fileName);
  view.querySelector(".file-chip-name").textContent = job.fileName;
  view.querySelector(".prompt").textContent = job.prompt;
  view.querySelector(".cancel").addEventListener("click", () => cancel(job));
  job.view = view;
  $("empty").hidden = true;
  $("conversation").append(view);
  render(job);
}

function render(job) {
  if (!dirty.size) requestAnimationFrame(flushRenders);
  dirty.add(job);
}

function flushRenders() {
  const box = $("conversation");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  for (const job of dirty) {
    const view = job.view;
    view.dataset.jobId = job.id ?? "";
    view.dataset.status = job.status;
    view.classList.toggle("streaming", job.text !== "");
    view.querySelector(".stage").textContent = job.stage || statusLabel(job.status);
    view.querySelector(".progress").setAttribute("aria-valuenow", job.progress);
    view.querySelector(".bar").style.width = `${job.progress}%`;
    view.querySelector(".answer").innerHTML = renderMarkdown(job.text);
    const error = view.querySelector(".error");
    error.textContent = job.error;
    error.hidden = !job.error;
    showHistoryStatus(job.id, job.status);
  }
  dirty.clear();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function statusLabel(status) {
  return { uploading: "Uploading…", pending: "Queued", processing: "Working…" }[status] ?? "";
}

// Every event carries a per-job `seq`: one already applied (a replay after a reconnect) is skipped.
// `partial` is the whole answer so far, so a missed chunk heals with the next one.
function applyEvent(event) {
  const job = jobs.get(event.job_id);
  if (!job || event.seq <= job.seq) return;
  job.seq = event.seq ?? job.seq;
  if (event.type === "job_update") {
    job.progress = Math.max(job.progress, event.progress ?? 0);
    job.status = event.status ?? "processing";
    job.stage = event.stage ?? "";
  } else if (event.type === "ai_chunk") {
    job.text = event.partial;
    job.status = "processing";
  } else if (event.type === "job_completed") {
    job.text = event.ai_response;
    job.progress = 100;
    job.status = "completed";
  } else if (event.type === "job_failed") {
    job.error = event.error;
    job.status = event.status ?? "failed";
  }
  saveJobs();
  render(job);
}

function applyJobData(job, data) {
  job.status = data.status;
  job.progress = Math.max(job.progress, data.progress);
  job.text = data.ai_response ?? "";
  // GET has no error field (the seed's shape): keep the reason the job_failed event gave.
  if (data.status === "failed") job.error ||= "This job failed.";
  if (data.status === "cancelled") job.error = "Job cancelled";
  render(job);
}

// --- REST ---------------------------------------------------------------------------------------

// --- API key ------------------------------------------------------------------------------------
// With auth on, every request but the health check sends `Authorization: Bearer <key>`, and the
// socket sends `{"type": "auth"}` first (never `?token=`: a URL ends up in logs and history).

let apiKey = localStorage.getItem(API_KEY) ?? "";
let keySaved = null; // resolves the wait for a key (see needKey)

function authHeaders() {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}

// Show the key field, with why; resolves once the user saved a key.
function needKey(reason) {
  $("keybar").hidden = false;
  $("key-error").textContent = reason;
  $("api-key").value = apiKey;
  $("api-key").focus();
  return new Promise((resolve) => (keySaved = resolve));
}

$("keybar").addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey = $("api-key").value.trim();
  if (!apiKey) return;
  localStorage.setItem(API_KEY, apiKey);
  $("keybar").hidden = true;
  $("key-error").textContent = "";
  const resolve = keySaved;
  keySaved = null;
  if (resolve) resolve();
  else restart();
});

// A refused key mid-session: ask again, then read the jobs and reconnect with the new one.
function keyRefused(reason) {
  if (!$("keybar").hidden) return;
  needKey(reason).then(restart);
}

function restart() {
  reconnects = 0;
  if (socket) {
    socket.onclose = null;
    socket.close();
  }
  connect();
  restoreJobs();
  if (!$("history").hidden) loadHistory();
}

async function request(method, path, body) {
  let response;
  try {
    response = await fetch(`${API}${path}`, { method, body, headers: authHeaders() });
  } catch {
    return { ok: false, status: 0, error: "The server cannot be reached." };
  }
  if (response.status === 401) keyRefused(apiKey ? "The server refused this key." : "");
  const payload = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data: payload.data,
    error: payload.error ?? `HTTP ${response.status}` };
}

async function send(file, prompt) {
  const job = newJob({ prompt, fileName: file.name, status: "uploading" });
  addView(job);
  $("conversation").scrollTop = $("conversation").scrollHeight; // show the question just sent
  const form = new FormData();
  form.append("file", file);
  form.append("prompt", prompt);
  if ($("priority").value) form.append("priority", $("priority").value);
  if ($("schedule").value) form.append("scheduled_at", new Date($("schedule").value).toISOString());
  const result = await request("POST", "/api/upload", form);
  if (!result.ok) {
    job.status = "failed";
    job.error = result.error;
    render(job);
    return;
  }
  job.id = result.data.job_id;
  job.status = result.data.status;
  jobs.set(job.id, job);
  saveJobs();
  render(job);
  subscribe(job); // replays whatever the job published before we knew its id
  if (!$("history").hidden) loadHistory();
}

async function cancel(job) {
  const result = await request("DELETE", `/api/jobs/${encodeURIComponent(job.id)}`);
  if (result.ok) applyJobData(job, result.data);
  else job.error = `Could not cancel: ${result.error}`;
  render(job);
}

async function restoreJobs() {
  const saved = loadSavedJobs().filter((s) => s.id && !jobs.has(s.id));
  for (const fields of saved) {
    const job = newJob(fields);
    jobs.set(job.id, job);
    addView(job);
  }
  await Promise.all(
    [...jobs.values()].map(async (job) => {
      const result = await request("GET", `/api/jobs/${encodeURIComponent(job.id)}`);
      if (result.ok) {
        applyJobData(job, result.data);
      } else if (result.status === 404) {
        jobs.delete(job.id);
        job.view.remove();
      }
    }),
  );
  saveJobs();
  $("empty").hidden = jobs.size > 0;
}

// --- past jobs ----------------------------------------------------------------------------------
// GET /api/jobs, newest first, a page at a time (`next` is the cursor of the page after). A job's
// shape is the seed's, without its prompt: the list shows the prompts this browser asked.

let historyNext = null;

async function loadHistory(more = false) {
  const params = new URLSearchParams({ limit: HISTORY_PAGE });
  if (more && historyNext) params.set("cursor", historyNext);
  const result = await request("GET", `/api/jobs?${params}`);
  if (!result.ok) return;
  if (!more) $("history-list").replaceChildren();
  $("history-list").append(...result.data.jobs.map(historyItem));
  historyNext = result.data.next;
  $("history-more").hidden = !historyNext;
  $("history-empty").hidden = $("history-list").children.length > 0;
}

function historyItem(data) {
  const item = $("history-item-template").content.firstElementChild.cloneNode(true);
  const button = item.querySelector(".history-item");
  button.dataset.jobId = data.job_id;
  button.title = data.file_name;
  item.querySelector(".history-file").textContent = data.file_name;
  item.querySelector(".history-prompt").textContent = promptOf(data.job_id);
  button.addEventListener("click", () => showPastJob(data.job_id));
  showHistoryStatus(data.job_id, data.status, item);
  return item;
}

// An item's status, kept as the job's events arrive (not "uploading": a job has no item before).
function showHistoryStatus(id, status, within = $("history-list")) {
  const item = within.querySelector(`.history-item[data-job-id="${CSS.escape(id ?? "")}"]`);
  const label = item?.querySelector(".history-status");
  if (!label || status === "uploading") return;
  label.textContent = status;
  label.dataset.status = status;
}

function promptOf(id) {
  return jobs.get(id)?.prompt ?? loadSavedJobs().find((saved) => saved.id === id)?.prompt ?? "";
}

// Show a past job in the conversation: its answer as GET /api/jobs/{id} has it, then its events
// if it is still running.
async function showPastJob(id) {
  let job = jobs.get(id);
  if (!job) {
    const result = await request("GET", `/api/jobs/${encodeURIComponent(id)}`);
    if (!result.ok) return;
    job = newJob({ id, prompt: promptOf(id), fileName: result.data.file_name });
    jobs.set(id, job);
    addView(job);
    applyJobData(job, result.data);
    saveJobs();
    if (!FINAL.has(job.status)) subscribe(job);
  }
  for (const item of $("history-list").querySelectorAll(".history-item")) {
    item.setAttribute("aria-current", String(item.dataset.jobId === id));
  }
  if (matchMedia("(max-width: 720px)").matches) toggleHistory(false);
  job.view.scrollIntoView({ block: "start" });
}

function toggleHistory(open = $("history").hidden) {
  $("history").hidden = !open;
  $("history-toggle").setAttribute("aria-expanded", String(open));
  if (open) loadHistory();
}

$("history-toggle").addEventListener("click", () => toggleHistory());
$("history-more").addEventListener("click", () => loadHistory(true));

// --- WebSocket ----------------------------------------------------------------------------------

let socket = null;
let reconnects = 0;

function subscribe(job) {
  if (socket?.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "subscribe", job_id: job.id, after_seq: job.seq }));
  }
}

function connect() {
  socket = new WebSocket(WS_URL);
  socket.onopen = () => {
    reconnects = 0;
    if (apiKey) socket.send(JSON.stringify({ type: "auth", token: apiKey }));
    showConnection("open");
    for (const job of jobs.values()) if (!FINAL.has(job.status)) subscribe(job);
  };
  socket.onmessage = (message) => applyEvent(JSON.parse(message.data));
  socket.onclose = (event) => {
    socket = null;
    if (event.code === CLOSE_POLICY_VIOLATION && event.reason.includes("key")) {
      showConnection("offline");
      keyRefused(apiKey ? "The server refused this key." : "");
    } else if (reconnects < MAX_RECONNECTS) {
      reconnects += 1;
      showConnection("reconnecting");
      setTimeout(connect, RECONNECT_DELAY_MS);
    } else {
      showConnection("offline");
    }
  };
}

function showConnection(state) {
  $("connection").dataset.state = state;
  $("connection").querySelector(".label").textContent =
    { open: "Connected", reconnecting: "Disconnected", offline: "Offline" }[state];
  $("banner").hidden = state === "open";
  $("banner-text").textContent =
    state === "offline"
      ? "Connection lost."
      : `Reconnecting… (attempt ${reconnects} of ${MAX_RECONNECTS})`;
  $("retry").hidden = state !== "offline";
}

// --- composer -----------------------------------------------------------------------------------

let attached = null;
let thumbUrl = "";

function attach(file) {
  attached = file;
  URL.revokeObjectURL(thumbUrl);
  thumbUrl = file?.type.startsWith("image/") ? URL.createObjectURL(file) : "";
  $("attachment").hidden = !file;
  $("attachment-thumb").hidden = !thumbUrl;
  $("attachment-thumb").src = thumbUrl;
  $("attachment-icon").textContent = file && !thumbUrl ? fileLabel(file.name) : "";
  $("attachment-name").textContent = file?.name ?? "";
  $("attachment-size").textContent = file ? formatSize(file.size) : "";
  $("send").disabled = !file;
}

function fileLabel(name) {
  return name.includes(".") ? name.split(".").pop().slice(0, 4).toUpperCase() : "FILE";
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

$("file").addEventListener("change", (e) => attach(e.target.files[0] ?? null));
$("attachment-remove").addEventListener("click", () => {
  $("file").value = "";
  attach(null);
});
$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!attached) return;
  send(attached, $("prompt").value.trim());
  $("prompt").value = "";
  $("schedule").value = ""; // a schedule is for one job; the priority stays
  $("file").value = "";
  attach(null);
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});
$("prompt").addEventListener("input", (e) => {
  e.target.style.height = "auto";
  e.target.style.height = `${e.target.scrollHeight}px`;
});

// --- theme --------------------------------------------------------------------------------------

const root = document.documentElement;
root.dataset.theme = localStorage.getItem(THEME_KEY) ?? "";
$("theme-toggle").addEventListener("click", () => {
  const dark = root.dataset.theme
    ? root.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = dark ? "light" : "dark";
  localStorage.setItem(THEME_KEY, root.dataset.theme);
});

$("retry").addEventListener("click", () => {
  reconnects = 0;
  showConnection("reconnecting");
  connect();
});

// Ask for a key first if the server needs one and none is saved; then snapshot the saved jobs
// and connect: on open, every unfinished job is subscribed from the last seq this browser saw.
async function start() {
  const health = await request("GET", "/api/health");
  if (health.data?.auth && !apiKey) await needKey("");
  await restoreJobs();
  connect();
}

start();
