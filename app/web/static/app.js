/* The FileSync dashboard: plain JavaScript over the JSON API (README "Web dashboard").
   Live updates come from the Server-Sent Events stream; changes send the CSRF token. */
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { status: null, last: 0, kinds: [], trashOffset: 0, trashItems: [] };
const ACTIVITY_ROWS = 200;
const TRASH_PAGE = 50;

function csrfToken() {
  const port = location.port || (location.protocol === "https:" ? "443" : "80");
  const name = `filesync-csrf-${port}=`;
  const found = document.cookie.split("; ").find((c) => c.startsWith(name));
  return found ? decodeURIComponent(found.slice(name.length)) : "";
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401 || response.status === 403) {
    throw new ApiError("This browser is not logged in any more: open the dashboard again with "
      + "`filesync dashboard` or the tray menu.", data);
  }
  if (!response.ok) throw new ApiError((data && data.error) || `${response.status} ${response.statusText}`, data);
  return data;
}

class ApiError extends Error {
  constructor(message, data) { super(message); this.data = data || {}; }
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  const clock = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
  return today ? date.toLocaleTimeString([], clock)
    : date.toLocaleString([], { ...clock, year: "numeric", month: "short", day: "numeric" });
}

function clockTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function locationName(key) {
  const row = state.status && state.status.locations.find((l) => l.key === key || l.name === key);
  return row ? row.short : key;
}

/* An activity's detail ("from folder:/home/me/a") with location names shortened. */
function shortDetail(text) {
  if (!text || !state.status) return text;
  let out = text;
  for (const row of state.status.locations) out = out.split(row.name).join(row.short);
  return out;
}

function tell(text, good) {
  const box = $("#message");
  box.textContent = text;
  box.className = good ? "good" : "";
  box.hidden = !text;
  if (good) setTimeout(() => { if (box.textContent === text) box.hidden = true; }, 6000);
}

async function act(promise, done) {
  try {
    const result = await promise;
    if (!$("#message").classList.contains("good")) tell("");  // a problem solved: clear it
    if (done) done(result);
    return result;
  } catch (error) {
    tell(error.message);
    return null;
  }
}

/* ----- status and locations ----- */

function showStatus(status) {
  state.status = status;
  const rows = status.locations;
  const bad = rows.filter((l) => l.state === "error" || l.state === "unavailable").length;
  let text = status.paused ? "Paused" : status.syncing ? "Syncing…" : "Up to date";
  if (!status.paused && bad) text = `${bad} location${bad > 1 ? "s" : ""} need${bad > 1 ? "" : "s"} attention`;
  if (status.pending) text += ` · ${status.pending} pending`;
  text += ` · last sync ${when(status.last_sync)}`;
  if (status.error) text += ` · ${status.error}`;
  $("#summary").textContent = text;
  $("#pause").textContent = status.paused ? "Resume" : "Pause";
  const list = $("#locations");
  list.replaceChildren(...rows.map(locationCard));
  if (!rows.length) list.append(el("li", { class: "empty" }, "No locations yet: add one below."));
  const select = $("#trash-location");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "All"),
    ...rows.map((l) => el("option", { value: l.key }, l.spec)));
  select.value = chosen;
}

function locationCard(loc) {
  return el("li", { class: "card location", dataset: { key: loc.key, state: loc.state } },
    el("div", { class: "top" },
      el("span", { class: "name" }, loc.short),
      el("span", { class: `badge state-${loc.state}` }, loc.state)),
    el("p", { class: "spec" }, loc.spec),
    el("p", { class: "meta" },
      `${loc.kind} · ${loc.files} file${loc.files === 1 ? "" : "s"} · last sync ${when(loc.last_sync)}`
      + (loc.pending ? ` · ${loc.pending} pending` : "")),
    loc.last_error ? el("p", { class: "error" }, loc.last_error) : null,
    loc.advice ? el("p", { class: "advice" }, loc.advice) : null,
    el("div", { class: "buttons" },
      el("button", {
        type: "button", class: "danger remove",
        onclick: () => {
          if (!confirm(`Stop syncing ${loc.spec}? Its files stay where they are.`)) return;
          act(api("DELETE", `/api/locations/${encodeURIComponent(loc.key)}`), showStatus)
            .then((r) => r && tell(`Stopped syncing ${loc.spec}.`, true));
        },
      }, "Remove")));
}

/* ----- activity ----- */

const ACTION_WORDS = { copied: "copied", deleted: "deleted", renamed: "renamed",
  conflict: "conflict", held: "held back", error: "error" };

function activityRow(item) {
  return el("li", { class: `act-${item.action}`, dataset: { seq: item.seq } },
    el("span", { class: "when" }, clockTime(item.time)),
    el("span", { class: "what" }, ACTION_WORDS[item.action] || item.action),
    el("span", { class: "path" }, item.path || "—"),
    el("span", { class: "where", title: [item.location, item.detail].filter(Boolean).join(" ") },
      [`in ${locationName(item.location)}`, shortDetail(item.detail)].filter(Boolean).join(" · ")));
}

function addActivity(items) {
  const list = $("#activity");
  const empty = list.querySelector(".empty");
  if (empty && items.length) empty.remove();
  for (const item of items) {
    if (item.seq <= state.last) continue;
    state.last = item.seq;
    list.prepend(activityRow(item));
    if (item.action === "conflict") refreshConflictCount();
  }
  while (list.children.length > ACTIVITY_ROWS) list.lastElementChild.remove();
  if (items.length) reloadViewSoon();
}

/* The conflicts and trash views follow what the engine does, a moment after it did it. */
let reloadTimer = null;
function reloadViewSoon() {
  if (reloadTimer !== null) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    if (!$("#conflicts").hidden) loadConflicts();
    else if (!$("#trash").hidden && state.trashOffset <= TRASH_PAGE) loadTrash(false);
    else refreshConflictCount();
  }, 700);
}

function listen() {
  const source = new EventSource(`/api/activity/stream?since=${state.last}`);
  source.addEventListener("activity", (event) => addActivity([JSON.parse(event.data)]));
  source.addEventListener("status", (event) => showStatus(JSON.parse(event.data)));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      tell("Lost the connection to FileSync; retrying…");
      setTimeout(listen, 3000);
    }
  });
  source.addEventListener("open", () => { if ($("#message").textContent.startsWith("Lost")) tell(""); });
}

/* ----- add a location ----- */

/* The chosen kind's fields, as the kind declares them (GET /api/kinds): the page, like the
   desktop dialog, names no kind and no field. */
function fieldInput(field) {
  if (field.widget === "checkbox") {
    const box = el("input", { name: field.name, type: "checkbox" });
    box.checked = field.default === true;
    return el("label", { class: "check" }, box, " ", field.label);
  }
  let input;
  if (field.widget === "choice") {
    input = el("select", { name: field.name }, field.choices.map((c) => el("option", { value: c }, c)));
  } else {
    const type = field.widget === "password" ? "password" : "text";
    input = el("input", { name: field.name, type, autocomplete: type === "password" ? "new-password" : "off" });
    if (field.widget === "port") input.setAttribute("inputmode", "numeric");
    if (field.suffix) input.placeholder = `/home/me/backup${field.suffix}`;
    else if (field.widget === "folder") input.placeholder = "/home/me/Documents";
  }
  input.value = String(field.default);
  return el("div", {},
    el("label", {}, field.label.replace(/:$/, ""), " ", input),
    field.help ? el("p", { class: "hint" }, field.help) : null,
    el("p", { class: "field-error", dataset: { field: field.name } }));
}

function showKindFields() {
  const kind = state.kinds.find((k) => k.name === $("#kind").value);
  if (!kind) return;
  $("#kind-fields").replaceChildren(...kind.fields.map(fieldInput));
}

async function addLocation(event) {
  event.preventDefault();
  const form = $("#add-form");
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  const kind = state.kinds.find((k) => k.name === form.kind.value);
  const body = { kind: form.kind.value };
  for (const field of kind ? kind.fields : []) {
    const input = form.elements[field.name];
    body[field.name] = field.widget === "checkbox" ? input.checked : input.value;
  }
  try {
    const added = await api("POST", "/api/locations", body);
    form.reset();
    showKindFields();
    $("#add").open = false;
    tell(`Added ${added.spec}; its first sync is running.`, true);
  } catch (error) {
    const fields = error.data.fields || {};
    let shown = false;
    for (const [name, text] of Object.entries(fields)) {
      const slot = form.querySelector(`.field-error[data-field="${name}"]`);
      if (slot) { slot.textContent = text; shown = true; }
    }
    if (!shown) tell(error.message);
  }
}

/* ----- conflicts ----- */

async function refreshConflictCount() {
  try {
    const data = await api("GET", "/api/conflicts");
    $("#conflict-count").textContent = data.items.length ? `(${data.items.length})` : "";
    return data;
  } catch (error) { return null; }
}

async function loadConflicts() {
  const data = await act(api("GET", "/api/conflicts"));
  if (!data) return;
  $("#conflict-count").textContent = data.items.length ? `(${data.items.length})` : "";
  const list = $("#conflict-list");
  list.replaceChildren(...data.items.map(conflictCard));
  if (!data.items.length) list.append(el("li", { class: "empty" }, "No conflicts."));
}

function conflictCard(item) {
  const keep = (which) => act(api("POST", "/api/conflicts/resolve", { id: item.id, keep: which }), () => {
    tell(which === "copy" ? `Kept the conflict copy as ${item.path}.` : `Kept the current ${item.path}.`, true);
    loadConflicts();
  });
  const version = (title, path, mtime, bytes, label, which) => el("div", { class: "version" },
    el("h3", {}, title), el("p", {}, path), el("p", {}, `changed ${when(mtime)}`), el("p", {}, size(bytes)),
    el("button", { type: "button", class: `keep-${which}`, onclick: () => keep(which) }, label));
  return el("li", { class: "card conflict", dataset: { id: item.id } },
    el("div", { class: "top" }, el("span", { class: "name" }, item.path),
      el("span", { class: "badge state-error" }, locationName(item.location))),
    el("div", { class: "versions" },
      version("Current version", item.path, item.current_mtime, item.current_size, "Keep this", "current"),
      version("Conflict copy", item.copy, item.mtime, item.size, "Keep the copy", "copy")));
}

/* ----- trash ----- */

function trashWindow() {
  const seconds = $("#trash-window").value;
  const now = Date.now() / 1000;
  return seconds ? { since: now - Number(seconds), until: now } : { since: null, until: now };
}

function trashQuery(offset) {
  const params = new URLSearchParams({ offset: String(offset), limit: String(TRASH_PAGE) });
  const where = $("#trash-location").value;
  if (where) params.set("location", where);
  const range = trashWindow();
  if (range.since !== null) params.set("since", String(range.since));
  return `/api/trash?${params}`;
}

async function loadTrash(more) {
  const offset = more ? state.trashOffset : 0;
  const data = await act(api("GET", trashQuery(offset)));
  if (!data) return;
  state.trashItems = more ? state.trashItems.concat(data.items) : data.items;
  state.trashOffset = offset + data.items.length;
  const body = $("#trash-list");
  body.replaceChildren(...state.trashItems.map(trashRow));
  if (!state.trashItems.length) {
    body.append(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "Nothing in the trash for this choice.")));
  }
  const total = data.total === undefined ? state.trashItems.length : data.total;
  $("#trash-total").textContent = `${state.trashItems.length} of ${total} shown`;
  $("#trash-more").hidden = state.trashItems.length >= total;
}

function trashRow(item) {
  return el("tr", { class: "trash-item", dataset: { id: item.id, path: item.path } },
    el("td", { class: "path" }, item.path),
    el("td", {}, locationName(item.location)),
    el("td", {}, item.reason),
    el("td", {}, when(item.trashed_at)),
    el("td", {}, size(item.size)),
    el("td", {}, el("button", {
      type: "button", class: "restore",
      onclick: () => act(api("POST", "/api/trash/restore", { id: item.id }), (result) => {
        tell(result.path === item.path ? `Restored ${item.path}.` : `Restored ${item.path} as ${result.path} (a newer file is at its place).`, true);
        loadTrash(false);
      }),
    }, "Restore")));
}

async function restoreWindow() {
  const range = trashWindow();
  const words = $("#trash-window").selectedOptions[0].textContent;
  if (!confirm(`Restore every file deleted in ${words}?`)) return;
  const body = { since: range.since === null ? 0 : range.since, until: range.until };
  const where = $("#trash-location").value;
  if (where) body.location = where;
  await act(api("POST", "/api/trash/restore-window", body), (data) => {
    const failed = data.items.filter((r) => r.error);
    const done = data.items.length - failed.length;
    if (failed.length) tell(`Restored ${done}; ${failed.length} could not be: ${failed[0].error}`);
    else tell(done ? `Restored ${done} deleted file${done > 1 ? "s" : ""}.` : "Nothing was deleted in that window.", true);
    loadTrash(false);
  });
}

/* ----- views and start ----- */

function showView(name) {
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("current", button.dataset.view === name);
  }
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== name;
  if (name === "conflicts") loadConflicts();
  if (name === "trash") loadTrash(false);
}

async function start() {
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => showView(button.dataset.view));
  }
  $("#pause").addEventListener("click", () =>
    act(api("POST", state.status && state.status.paused ? "/api/resume" : "/api/pause"), showStatus));
  $("#sync").addEventListener("click", () =>
    act(api("POST", "/api/sync"), (s) => { showStatus(s); tell("Syncing every location now.", true); }));
  $("#add-form").addEventListener("submit", addLocation);
  $("#kind").addEventListener("change", showKindFields);
  $("#trash-location").addEventListener("change", () => loadTrash(false));
  $("#trash-window").addEventListener("change", () => loadTrash(false));
  $("#trash-more").addEventListener("click", () => loadTrash(true));
  $("#restore-window").addEventListener("click", restoreWindow);

  const kinds = await act(api("GET", "/api/kinds"));
  state.kinds = kinds ? kinds.kinds : [];
  $("#kind").replaceChildren(...state.kinds.map((k) => el("option", { value: k.name }, k.title)));
  showKindFields();
  const status = await act(api("GET", "/api/status"));
  if (status) showStatus(status);
  const activity = await act(api("GET", "/api/activity?since=0"));
  if (activity) {
    if (!activity.items.length) $("#activity").append(el("li", { class: "empty" }, "Nothing happened yet."));
    addActivity(activity.items);
    state.last = Math.max(state.last, activity.last);
  }
  refreshConflictCount();
  listen();
  document.body.dataset.ready = "1";
}

start();
