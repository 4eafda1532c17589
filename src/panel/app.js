// ccjk-cloud web panel: plain JavaScript, no build step, embedded in the server binary.
//
// It talks to the /v1 API with the HttpOnly login cookie that /v1/panel/login sets (the page
// never sees a token) and sends the session's CSRF token as X-CSRF-Token on every request that
// is not a GET. Live updates come from GET /v1/events (Server-Sent Events; the browser's
// EventSource resumes with Last-Event-ID on its own). Pages are functions of the hash route;
// each may define onEvent(type, data) to update itself in place. DOM is built with el(), never
// from HTML strings, so nothing a user typed can become markup (and the strict CSP holds).
"use strict";

const S = { me: null, csrf: "", events: null, page: null, unread: 0, features: [] };
const SCOPES = ["user:read", "user:write", "device:read", "device:write", "task:create",
  "task:read", "task:cancel", "task:admin", "config:read", "config:write", "log:read", "stats:read"];
const FINAL = ["completed", "failed", "cancelled", "timeout"];
const $ = (sel) => document.querySelector(sel);

// Problems the page met (uncaught errors, CSP violations), shown in a toast and kept for tests.
window.ccjkProblems = [];
window.addEventListener("error", (e) => problem("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => problem("rejection: " + (e.reason && e.reason.message || e.reason)));
document.addEventListener("securitypolicyviolation", (e) => problem("csp: " + e.violatedDirective + " " + e.blockedURI));
function problem(text) { window.ccjkProblems.push(text); toast(text, true); }

// ---- DOM helpers -------------------------------------------------------------------------
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k === "class") n.className = v;
    else if (v === true) n.setAttribute(k, "");
    else n.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return n;
}
function mount(...kids) { const m = $("#main"); m.replaceChildren(...kids); return m; }
function toast(text, bad) {
  const t = $("#toast");
  t.textContent = text; t.className = bad ? "toast bad" : "toast"; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}
function badge(status) { return el("span", { class: "status s-" + status, "data-status": status }, status); }
function when(ts) {
  if (!ts) return "never";
  const d = new Date(ts), s = (Date.now() - d.getTime()) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return d.toISOString().slice(0, 16).replace("T", " ");
}
function field(label, input) { return el("label", {}, label, input); }

// ---- API ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}
async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && S.csrf) headers["X-CSRF-Token"] = S.csrf;
  const r = await fetch(path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  let j = null;
  try { j = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok || !j || j.success === false) {
    const e = (j && j.error) || {};
    if (r.status === 401 && !path.startsWith("/v1/panel/")) { loggedOut(); }
    throw new ApiError(r.status, e.code || "HTTP_" + r.status, e.message || r.statusText);
  }
  return j.data;
}
// Runs an action, reporting failure in a toast; resolves to undefined on failure.
async function attempt(fn) {
  try { return await fn(); } catch (e) { if (e.status !== 401) toast(e.message, true); return undefined; }
}

// ---- session and live events -------------------------------------------------------------
function loggedIn(d) {
  S.me = d.user; S.csrf = d.csrf_token;
  $("#nav").hidden = false;
  for (const f of ["messages", "stats"]) $('nav a[data-page="' + f + '"]').hidden = !S.features.includes(f);
  startEvents();
  refreshUnread();
}
function loggedOut() {
  S.me = null; S.csrf = "";
  $("#nav").hidden = true;
  if (S.events) { S.events.close(); S.events = null; }
  $("#live").hidden = true;
  if (!["#/login", "#/signup"].includes(location.hash)) location.hash = "#/login";
}
const EVENT_TYPES = ["task.created", "task.updated", "task.completed", "device.online",
  "device.offline", "message.new", "events.lost"];
function startEvents() {
  if (S.events) return;
  const es = new EventSource("/v1/events");
  S.events = es;
  const live = $("#live");
  live.hidden = false;
  es.onopen = () => live.classList.add("on");
  es.onerror = () => live.classList.remove("on");
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (_) { return; }
      onEvent(type, msg.data || {});
    });
  }
}
function onEvent(type, d) {
  if (type === "message.new") { S.unread += 1; showUnread(); }
  if (type === "task.completed" && !(S.page && S.page.task === d.task_id)) {
    toast("Task " + d.status + (d.exit_code !== null && d.exit_code !== undefined ? " (exit " + d.exit_code + ")" : ""));
  }
  if (S.page && S.page.onEvent) S.page.onEvent(type, d);
}
function showUnread() {
  const b = $("#unread");
  b.textContent = String(S.unread); b.hidden = S.unread <= 0;
}
async function refreshUnread() {
  if (!S.features.includes("messages")) return;
  try {
    const d = await api("GET", "/v1/messages?unread=true&limit=200");
    const list = d.messages || d.items || [];
    S.unread = typeof d.unread_count === "number" ? d.unread_count : list.length;
  } catch (_) { S.unread = 0; } // the messages routes may not exist on this server
  showUnread();
}

// ---- pages -------------------------------------------------------------------------------
const PAGES = {
  login: loginPage, signup: signupPage, devices: devicesPage, device: devicePage,
  tasks: tasksPage, task: taskPage, access: accessPage, messages: messagesPage, stats: statsPage,
};
async function route() {
  const [, name = "devices", arg] = (location.hash || "#/devices").split("/");
  const page = PAGES[name] ? name : "devices";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  if (!S.me && page !== "login" && page !== "signup") {
    const me = await api("GET", "/v1/panel/me");
    S.features = me.features;
    if (!me.login) { loggedOut(); return; }
    loggedIn(me.login);
  }
  S.page = { name: page };
  try { await PAGES[page](arg ? decodeURIComponent(arg) : undefined); } catch (e) {
    if (e.status !== 401) mount(el("p", { class: "error" }, e.message));
  }
}

function authForm(title, id, fields, submit, alt) {
  const err = el("p", { class: "error", id: id + "-error" });
  const form = el("form", { class: "stack", id: id + "-form" }, ...fields,
    el("button", { class: "primary", type: "submit", id: id + "-submit" }, title), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    try {
      const login = await submit();
      S.features = (await api("GET", "/v1/panel/me")).features;
      loggedIn(login);
      location.hash = "#/devices";
    } catch (e) { err.textContent = e.message; }
  });
  mount(el("section", { class: "card narrow" }, el("h1", {}, title), form, alt));
}
function loginPage() {
  const email = el("input", { id: "login-email", type: "text", autocomplete: "username", required: true });
  const pw = el("input", { id: "login-password", type: "password", autocomplete: "current-password", required: true });
  authForm("Log in", "login", [field("E-mail or username", email), field("Password", pw)],
    () => api("POST", "/v1/panel/login", { email: email.value, password: pw.value }),
    el("p", { class: "muted" }, "No account? ", el("a", { href: "#/signup", id: "to-signup" }, "Sign up")));
}
function signupPage() {
  const email = el("input", { id: "signup-email", type: "email", autocomplete: "email", required: true });
  const pw = el("input", { id: "signup-password", type: "password", autocomplete: "new-password", minlength: 8, required: true });
  authForm("Sign up", "signup", [field("E-mail", email), field("Password (8 characters or more)", pw)],
    () => api("POST", "/v1/panel/register", { email: email.value, password: pw.value }),
    el("p", { class: "muted" }, "Have an account? ", el("a", { href: "#/login" }, "Log in")));
}

function secretBox(title, key, note) {
  return el("div", { class: "secret", id: "secret" }, el("strong", {}, title),
    el("code", { id: "secret-value" }, key),
    el("span", { class: "muted" }, note),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "small", onclick: () => navigator.clipboard && navigator.clipboard.writeText(key).then(() => toast("Copied")) }, "Copy"),
      el("button", { type: "button", class: "small", onclick: (e) => e.target.closest(".secret").remove() }, "I saved it")));
}

async function devicesPage() {
  const holder = el("div", { id: "secret-holder" });
  const name = el("input", { id: "new-device-name", placeholder: "laptop", required: true, maxlength: 100 });
  const form = el("form", { class: "row", id: "new-device-form" }, field("New device name", name),
    el("button", { class: "primary", type: "submit" }, "Add device"));
  const body = el("tbody", { id: "devices" });
  const table = el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Status"), el("th", {}, "Last seen"),
      el("th", { class: "hide-sm" }, "Version"), el("th", {}, ""))), body));
  mount(el("h1", {}, "Devices"), el("section", { class: "card" }, form, holder), table);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = await attempt(() => api("POST", "/v1/devices", { name: name.value }));
    if (!d) return;
    name.value = "";
    holder.replaceChildren(secretBox("Device key for " + d.device.name, d.device_key,
      "Configure the daemon with this key now: it is shown only once (rotate it if it is lost)."));
    load();
  });
  async function load() {
    const d = await api("GET", "/v1/devices?limit=200");
    body.replaceChildren(...d.devices.map((dev) => el("tr", { "data-device": dev.id },
      el("td", {}, el("a", { href: "#/device/" + encodeURIComponent(dev.id) }, dev.name)),
      el("td", {}, badge(dev.status)),
      el("td", {}, when(dev.last_heartbeat_at || dev.last_heartbeat)),
      el("td", { class: "hide-sm" }, dev.ccjk_version || "—"),
      el("td", {}, el("div", { class: "actions" },
        el("button", { type: "button", class: "small", onclick: async () => {
          if (!confirm("Replace the key of " + dev.name + "? The daemon must get the new one.")) return;
          const r = await attempt(() => api("POST", "/v1/devices/" + encodeURIComponent(dev.id) + "/rotate-key"));
          if (r) holder.replaceChildren(secretBox("New key for " + dev.name, r.device_key, "Shown only once."));
        } }, "Rotate key"),
        el("button", { type: "button", class: "small danger", onclick: async () => {
          if (!confirm("Delete " + dev.name + "? Its unfinished tasks are cancelled.")) return;
          if (await attempt(() => api("DELETE", "/v1/devices/" + encodeURIComponent(dev.id)))) load();
        } }, "Delete"))))));
    if (!d.devices.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No devices yet.")));
  }
  S.page.onEvent = (type) => { if (type.startsWith("device.")) load(); };
  await load();
}

async function devicePage(id) {
  const d = (await api("GET", "/v1/devices/" + encodeURIComponent(id))).device;
  const cmd = el("input", { id: "run-command", class: "mono", placeholder: "echo hello", required: true });
  const form = el("form", { class: "row", id: "run-form" }, field("Command", cmd),
    el("button", { class: "primary", type: "submit", id: "run-submit" }, "Run"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = await attempt(() => api("POST", "/v1/tasks", { device_id: d.id, command: cmd.value }));
    if (t) location.hash = "#/task/" + encodeURIComponent(t.task_id);
  });
  const recent = el("tbody", {});
  mount(el("h1", {}, d.name, " ", badge(d.status)),
    el("section", { class: "card" }, el("dl", { class: "facts" },
      el("dt", {}, "Last seen"), el("dd", {}, when(d.last_heartbeat_at || d.last_heartbeat)),
      el("dt", {}, "Version"), el("dd", {}, d.ccjk_version || "—"),
      el("dt", {}, "System"), el("dd", {}, [d.os_type, d.os_version, d.arch].filter(Boolean).join(" ") || "—"),
      el("dt", {}, "Host"), el("dd", {}, d.hostname || "—"),
      el("dt", {}, "Key"), el("dd", { class: "mono" }, d.key_prefix + "…"))),
    el("section", { class: "card" }, el("h2", {}, "Run a command"), form),
    el("h2", {}, "Recent tasks"), el("div", { class: "scroll" }, el("table", {}, recent)));
  async function load() {
    const l = await api("GET", "/v1/tasks?limit=10&device_id=" + encodeURIComponent(d.id));
    recent.replaceChildren(...l.tasks.map(taskRow));
  }
  S.page.onEvent = (type, e) => {
    if (type.startsWith("task.") && e.device_id === d.id) load();
    if (type.startsWith("device.") && e.device_id === d.id) devicePage(id);
  };
  await load();
}

function taskRow(t) {
  const final = FINAL.includes(t.status);
  return el("tr", { "data-task": t.id },
    el("td", {}, badge(t.status)),
    el("td", { class: "cmd mono" }, el("a", { href: "#/task/" + encodeURIComponent(t.id) }, t.command)),
    el("td", { class: "hide-sm" }, when(t.created_at)),
    el("td", {}, el("div", { class: "actions" },
      final ? el("button", { type: "button", class: "small", onclick: () => retry(t.id) }, "Retry")
        : el("button", { type: "button", class: "small danger", onclick: () => cancel(t.id) }, "Cancel"))));
}
async function cancel(id) {
  if (await attempt(() => api("POST", "/v1/tasks/" + encodeURIComponent(id) + "/cancel"))) toast("Cancelled");
}
async function retry(id) {
  const t = await attempt(() => api("POST", "/v1/tasks/" + encodeURIComponent(id) + "/retry"));
  if (t) location.hash = "#/task/" + encodeURIComponent(t.task_id);
}

async function tasksPage() {
  const status = el("select", { id: "filter-status" }, el("option", { value: "" }, "any status"),
    ...["queued", "pending", "running", ...FINAL].map((s) => el("option", { value: s }, s)));
  const device = el("select", { id: "filter-device" }, el("option", { value: "" }, "any device"));
  const body = el("tbody", { id: "tasks" });
  const more = el("button", { type: "button", hidden: true }, "More");
  let offset = 0;
  mount(el("h1", {}, "Tasks"),
    el("form", { class: "row card", id: "task-filters" }, field("Status", status), field("Device", device)),
    el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Status"),
      el("th", {}, "Command"), el("th", { class: "hide-sm" }, "Created"), el("th", {}, ""))), body)), more);
  const devs = await api("GET", "/v1/devices?limit=200");
  device.append(...devs.devices.map((d) => el("option", { value: d.id }, d.name)));
  async function load(append) {
    const q = new URLSearchParams({ limit: "50", offset: String(offset) });
    if (status.value) q.set("status", status.value);
    if (device.value) q.set("device_id", device.value);
    const l = await api("GET", "/v1/tasks?" + q);
    const rows = l.tasks.map(taskRow);
    if (append) body.append(...rows); else body.replaceChildren(...rows);
    if (!append && !rows.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No tasks.")));
    more.hidden = !l.next_cursor;
  }
  status.addEventListener("change", () => { offset = 0; load(false); });
  device.addEventListener("change", () => { offset = 0; load(false); });
  more.addEventListener("click", () => { offset += 50; load(true); });
  S.page.onEvent = (type) => { if (type.startsWith("task.") && offset === 0) load(false); };
  await load(false);
}

async function taskPage(id) {
  let t = (await api("GET", "/v1/tasks/" + encodeURIComponent(id))).task;
  S.page.task = id;
  const out = el("pre", { class: "out", id: "task-stdout" }, t.stdout || "");
  const err = el("pre", { class: "out err", id: "task-stderr" }, t.stderr || "");
  const head = el("div", {});
  function render() {
    const final = FINAL.includes(t.status);
    head.replaceChildren(
      el("h1", {}, "Task ", el("span", { id: "task-status" }, badge(t.status))),
      el("section", { class: "card" }, el("dl", { class: "facts" },
        el("dt", {}, "Command"), el("dd", { class: "mono" }, t.command),
        el("dt", {}, "Device"), el("dd", {}, t.device_id ? el("a", { href: "#/device/" + encodeURIComponent(t.device_id) }, t.device_id) : "any"),
        el("dt", {}, "Progress"), el("dd", { id: "task-progress" }, String(t.progress) + " %"),
        el("dt", {}, "Exit code"), el("dd", { id: "task-exit" }, t.exit_code === null || t.exit_code === undefined ? "—" : String(t.exit_code)),
        el("dt", {}, "Created"), el("dd", {}, when(t.created_at)),
        t.error_message ? [el("dt", {}, "Note"), el("dd", {}, t.error_message)] : null),
      el("div", { class: "actions" },
        final ? el("button", { type: "button", id: "task-retry", onclick: () => retry(id) }, "Retry")
          : el("button", { type: "button", class: "danger", id: "task-cancel", onclick: () => cancel(id) }, "Cancel"))));
  }
  render();
  mount(head, el("h2", {}, "Output"), out, el("h2", {}, "Errors"), err);
  S.page.onEvent = async (type, d) => {
    if (d.task_id !== id) return;
    if (type === "task.updated") {
      Object.assign(t, { status: d.status, progress: d.progress });
      for (const [name, pre] of [["stdout", out], ["stderr", err]]) {
        if (typeof d[name] !== "string") continue;
        if (d[name + "_reset"]) pre.textContent = d[name]; else pre.textContent += d[name];
      }
      render();
    } else if (type === "task.completed") {
      if (d.output_truncated) {
        t = (await api("GET", "/v1/tasks/" + encodeURIComponent(id))).task;
        out.textContent = t.stdout || ""; err.textContent = t.stderr || "";
      } else {
        Object.assign(t, { status: d.status, exit_code: d.exit_code, progress: d.progress, error_message: d.error_message });
        out.textContent = d.stdout; err.textContent = d.stderr;
      }
      render();
    }
  };
}

async function accessPage() {
  const holder = el("div", {});
  const name = el("input", { id: "key-name", required: true, maxlength: 100, placeholder: "ci script" });
  const boxes = SCOPES.map((s) => el("input", { type: "checkbox", value: s, checked: s.endsWith(":read") }));
  const form = el("form", { class: "stack", id: "new-key-form" }, field("Name", name),
    el("div", { class: "scopes" }, ...boxes.map((b) => el("label", {}, b, b.value))),
    el("div", {}, el("button", { class: "primary", type: "submit" }, "Create API key")));
  const keys = el("tbody", { id: "keys" }), sessions = el("tbody", { id: "sessions" });
  mount(el("h1", {}, "Keys & sessions"), el("section", { class: "card" }, el("h2", {}, "New API key"), form, holder),
    el("h2", {}, "API keys"), el("div", { class: "scroll" }, el("table", {}, keys)),
    el("h2", {}, "Sessions"), el("div", { class: "scroll" }, el("table", {}, sessions)));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const scopes = boxes.filter((b) => b.checked).map((b) => b.value);
    const k = await attempt(() => api("POST", "/v1/api-keys", { name: name.value, scopes }));
    if (!k) return;
    name.value = "";
    holder.replaceChildren(secretBox("API key " + k.api_key.name, k.key, "Shown only once."));
    load();
  });
  async function load() {
    const k = await api("GET", "/v1/api-keys?limit=200");
    keys.replaceChildren(...k.api_keys.map((x) => el("tr", {},
      el("td", {}, x.name), el("td", { class: "mono" }, x.key_prefix + "…"),
      el("td", { class: "hide-sm" }, x.scopes.join(" ")), el("td", {}, x.revoked_at ? "revoked" : "used " + when(x.last_used_at)),
      el("td", {}, x.revoked_at ? "" : el("button", { type: "button", class: "small danger", onclick: async () => {
        if (await attempt(() => api("DELETE", "/v1/api-keys/" + x.id))) load();
      } }, "Revoke")))));
    if (!k.api_keys.length) keys.append(el("tr", {}, el("td", { class: "muted" }, "No API keys.")));
    const s = await api("GET", "/v1/sessions?limit=200");
    sessions.replaceChildren(...s.sessions.map((x) => el("tr", {},
      el("td", {}, x.name || "session " + x.id, x.current ? " (this one)" : ""),
      el("td", { class: "hide-sm" }, x.user_agent || ""), el("td", {}, "used " + when(x.last_used_at)),
      el("td", {}, x.current ? "" : el("button", { type: "button", class: "small danger", onclick: async () => {
        if (!confirm("Sign this session out and delete its tasks?")) return;
        if (await attempt(() => api("DELETE", "/v1/sessions/" + x.id))) load();
      } }, "Sign out")))));
  }
  await load();
}

// Messages (routes /v1/messages…): a list with unread counts; read one, read all, delete.
async function messagesPage() {
  const body = el("tbody", { id: "messages" });
  const note = el("p", { class: "muted" });
  mount(el("h1", {}, "Messages"), el("div", { class: "actions" },
    el("button", { type: "button", id: "read-all", onclick: async () => {
      if (await attempt(() => api("POST", "/v1/messages/read-all"))) { S.unread = 0; showUnread(); load(); }
    } }, "Mark all read")), note, el("div", { class: "scroll" }, el("table", {}, body)));
  async function load() {
    if (!S.features.includes("messages")) { note.textContent = "Messages are not available on this server yet."; return; }
    const d = await api("GET", "/v1/messages?limit=100");
    const list = d.messages || [];
    body.replaceChildren(...list.map((m) => el("tr", { class: m.read_at ? "" : "unread" },
      el("td", {}, m.title, m.content ? el("div", { class: "muted" }, m.content) : null),
      el("td", { class: "hide-sm" }, when(m.created_at)),
      el("td", {}, el("div", { class: "actions" },
        m.read_at ? null : el("button", { type: "button", class: "small", onclick: async () => {
          if (await attempt(() => api("POST", "/v1/messages/" + m.id + "/read"))) { refreshUnread(); load(); }
        } }, "Read"),
        el("button", { type: "button", class: "small danger", onclick: async () => {
          if (await attempt(() => api("DELETE", "/v1/messages/" + m.id))) { refreshUnread(); load(); }
        } }, "Delete"))))));
    if (!list.length) body.append(el("tr", {}, el("td", { class: "muted" }, "No messages.")));
  }
  S.page.onEvent = (type) => { if (type === "message.new") load(); };
  await load();
}

// Statistics (routes /v1/stats/…): tasks per day and uptime per device, drawn with uPlot.
async function statsPage() {
  const period = el("select", { id: "stats-period" }, ...["24h", "7d", "30d", "90d"].map((p) =>
    el("option", { value: p, selected: p === "7d" }, p)));
  const tasksChart = el("div", { class: "chart", id: "chart-tasks" });
  const uptimeChart = el("div", { class: "chart", id: "chart-uptime" });
  const facts = el("dl", { class: "facts" });
  const note = el("p", { class: "muted" });
  mount(el("h1", {}, "Statistics"), el("form", { class: "row card" }, field("Period", period)), note,
    el("section", { class: "card" }, facts),
    el("section", { class: "card" }, el("h2", {}, "Tasks per day"), tasksChart),
    el("section", { class: "card" }, el("h2", {}, "Uptime per device (hours)"), uptimeChart));
  async function load() {
    if (!S.features.includes("stats")) { note.textContent = "Statistics are not available on this server yet."; return; }
    const s = await api("GET", "/v1/stats/summary?period=" + period.value);
    facts.replaceChildren(
      el("dt", {}, "Completed"), el("dd", {}, String(s.tasks_completed)),
      el("dt", {}, "Failed"), el("dd", {}, String(s.tasks_failed)),
      el("dt", {}, "Execution time"), el("dd", {}, String(s.total_execution_time) + " s"),
      el("dt", {}, "Devices online"), el("dd", {}, String(s.devices_online)),
      el("dt", {}, "Uptime"), el("dd", {}, s.uptime_hours.toFixed(1) + " h"),
      el("dt", {}, "Storage used"), el("dd", {}, bytes(s.storage_used) +
        (s.storage_quota == null ? "" : " of " + bytes(s.storage_quota))));
    const days = s.daily_breakdown || [];
    drawBars(tasksChart, days.map((d) => Date.parse(d.date + "T00:00:00Z") / 1000),
      [["completed", days.map((d) => d.completed), "#17803d"], ["failed", days.map((d) => d.failed), "#c0352b"]], true);
    // One request per device: the first 20 only, so a period change stays well inside the
    // user's rate limit (100 requests a minute).
    const all = (await api("GET", "/v1/devices?limit=200")).devices;
    const devs = all.slice(0, 20);
    const hours = [];
    for (const d of devs) {
      const st = await api("GET", "/v1/stats/device/" + encodeURIComponent(d.id) + "?period=" + period.value);
      hours.push(st.uptime_hours || 0);
    }
    note.textContent = all.length > devs.length ? `Uptime of the first ${devs.length} of ${all.length} devices.` : "";
    drawBars(uptimeChart, devs.map((_, i) => i), [["uptime (h)", hours, "#2456d6"]], false, devs.map((d) => d.name));
  }
  period.addEventListener("change", load);
  await load();
}
/** Bytes as kB, MB or GB (powers of ten, as the README's figures). */
function bytes(n) {
  const [d, u] = n >= 1e9 ? [1e9, "GB"] : n >= 1e6 ? [1e6, "MB"] : [1e3, "kB"];
  return (n / d).toFixed(1) + " " + u;
}
function drawBars(box, xs, series, time, labels) {
  box.replaceChildren();
  if (!xs.length) { box.append(el("p", { class: "muted" }, "Nothing in this period.")); return; }
  const width = Math.max(280, box.clientWidth || 600);
  const opts = {
    width, height: 240,
    scales: { x: { time, range: (u, lo, hi) => [lo - 0.6 * (time ? 86400 : 1), hi + 0.6 * (time ? 86400 : 1)] } },
    axes: [labels ? { values: (u, vals) => vals.map((v) => labels[v] ?? "") , space: 40 } : {}, {}],
    series: [{}, ...series.map(([label, , color]) => ({ label, stroke: color, fill: color + "99",
      paths: uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false } }))],
  };
  new uPlot(opts, [xs, ...series.map(([, ys]) => ys)], box);
}

// ---- start -------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("#logout").addEventListener("click", async () => {
    await attempt(() => api("POST", "/v1/panel/logout"));
    loggedOut();
  });
  window.addEventListener("hashchange", route);
  route();
});
