// The browser client: items and cars, their history, and what each write did.
// Plain ES modules, no framework: a hash router renders one view at a time into <main>.

import {
  ApiError,
  apiKey,
  asCurl,
  errorPage,
  forgetKey,
  get,
  headerName,
  mayWrite,
  onExchange,
  readOnlyReason,
  retire,
  send,
  setKeyPrompt,
} from "./api.js";

const API = "/v1";
const ITEMS = `${API}/inventory-items`;
const CARS = `${API}/cars`;
const MODELS = { Ford: ["Escape", "F150"], BMW: ["M3", "M5"] };
const COLORS = ["red", "white", "blue"];
const CONDITIONS = ["excellent", "good", "average", "poor"];
const CAR_FIELDS = ["year", "make", "model", "color", "mileage", "vin", "condition", "owner"];
const IMMUTABLE = ["year", "make", "model", "vin"];
const PAGE = 10;

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let flash = null; // a message (element) the next render shows at the top of its view
let rendering = 0; // the newest render wins when several overlap

// ------------------------------------------------------------------ DOM

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint && h("small", {}, hint));
}

function select(props, options, current) {
  return h(
    "select",
    props,
    options.map((o) => h("option", { value: o, selected: o === current }, o)),
  );
}

// The status line belongs to the page it was written on (the whole hash route, so a list's
// search or a resource's past version is another page): it is cleared anywhere else.
function currentPath() {
  return location.hash.slice(1) || "/items";
}

function say(text) {
  statusLine.textContent = text;
  statusLine.dataset.path = currentPath();
}

function errorBox(error) {
  const lines = error instanceof ApiError ? error.fieldErrors : [];
  const status = error instanceof ApiError ? `${error.status}: ` : "";
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, status, error.message, " ", error instanceof ApiError ? codeLink(error.problem) : null),
    lines.length ? h("ul", {}, lines.map((l) => h("li", {}, l))) : null,
  );
}

// "error 1004", linked to the API's page about that code.
function codeLink(problem) {
  const href = errorPage(problem);
  if (!href) return null;
  return h("a", { href, class: "error-code", target: "_blank", rel: "noopener" }, `error ${problem.errorCode}`);
}

function shortTag(etag) {
  return etag ? etag.replace(/^W\//, "") : "none";
}

function hrefOf(links, rel) {
  const link = (links || []).find((l) => l.rel === rel);
  return link ? link.href : null;
}

// The hash route's params from an API link's query (offset, filters).
function pageParams(href) {
  const params = new URLSearchParams(new URL(href, location.href).search);
  params.delete("limit");
  return params;
}

// ------------------------------------------------------------------ writes

// A write that may meet a 412: `attempt` names the command and how to redo it on fresh state.
//   {label, command, url, body, etag, method, base, rebase(fresh) -> body,
//    project(fresh, body) -> the state after the change, done(result), confirm}
// `base` is the state the person read before deciding; `confirm` (for what cannot be undone)
// is asked before anything is sent.
async function perform(attempt, place) {
  const target = place.querySelector(".outcome") || place;
  if (attempt.confirm && !(await confirmed(attempt.confirm))) {
    target.replaceChildren(h("p", { class: "hint" }, `${attempt.label}: not sent.`));
    return;
  }
  target.replaceChildren(h("p", { class: "busy" }, `${attempt.label}…`));
  try {
    const result = attempt.command
      ? await send(attempt.command, attempt.url, attempt.body, attempt.etag, attempt.method)
      : await retire(attempt.url, attempt.etag);
    const n = result.body && result.body.eventsAppended;
    await attempt.done(result);
    // The 202 names the new version's ETag (its ETag header, or on a PUT its body's etag):
    // the one the next write sends as If-Match, and the one the re-read shows.
    const tag = result.etag ? `; the ETag is now ${shortTag(result.etag)}` : "";
    say(`${attempt.label}: ${n} event(s) appended at commit position ${result.headers.get("Commit-Position")}${tag}.`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) {
      target.replaceChildren(conflict(attempt, target));
      target.querySelector("button").focus();
    } else {
      target.replaceChildren(errorBox(error));
      if (error instanceof ApiError && error.status === 403 && readOnlyReason()) await route();
    }
  }
}

// Irreversible commands ask first, in a dialog of the page (not window.confirm).
function confirmed({ title, text, yes }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const ok = document.getElementById("confirm-yes");
  ok.textContent = yes;
  return new Promise((resolve) => {
    const close = () => {
      dialog.removeEventListener("close", close);
      resolve(dialog.returnValue === "yes");
    };
    dialog.returnValue = "";
    dialog.addEventListener("close", close);
    dialog.showModal();
    document.getElementById("confirm-no").focus();
  });
}

// 412 Precondition Failed: show it, let the person reload the current state, see field by
// field what changed (theirs) against what they are about to send (yours), then reapply.
function conflict(attempt, target) {
  const box = h(
    "section",
    { class: "conflict", id: "conflict", role: "alert", "aria-labelledby": "conflict-title" },
    h("h3", { id: "conflict-title" }, "412 Precondition Failed: someone else changed this first"),
    h(
      "p",
      {},
      `Your change (${attempt.label}) was sent with If-Match ${shortTag(attempt.etag)}, `,
      "but the resource has moved on (another tab or person wrote to it). Nothing of yours was applied.",
    ),
  );
  const reload = h("button", { type: "button", id: "conflict-reload" }, "Reload the current state");
  reload.addEventListener("click", async () => {
    reload.disabled = true;
    try {
      // The 412 proves the resource moved past our ETag: a read still showing it is behind
      // the write side (the projector is a moment late), so read again, briefly.
      let fresh = await get(attempt.url);
      for (let n = 0; n < 20 && fresh.etag === attempt.etag; n += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        fresh = await get(attempt.url);
      }
      const body = attempt.rebase(fresh.body);
      const again = { ...attempt, body, etag: fresh.etag, confirm: null };
      const reapply = h("button", { type: "button", id: "conflict-reapply" }, `Reapply: ${attempt.label}`);
      reapply.addEventListener("click", () => perform(again, target));
      const cancel = h("button", { type: "button", class: "secondary", id: "conflict-drop" }, "Drop my change");
      cancel.addEventListener("click", () => route());
      box.append(
        h("p", {}, `The current ETag is ${shortTag(fresh.etag)}. What changed, field by field:`),
        diffTable(attempt.base, stripLinks(fresh.body), attempt.project(stripLinks(fresh.body), body)),
        h(
          "details",
          {},
          h("summary", {}, "The raw JSON"),
          h("h4", {}, "Theirs: the current state"),
          h("pre", { id: "conflict-current" }, JSON.stringify(stripLinks(fresh.body), null, 1)),
          h("h4", {}, `Yours: the body the reapply sends (If-Match ${shortTag(fresh.etag)})`),
          h("pre", { id: "conflict-mine" }, JSON.stringify(body, null, 1)),
        ),
        reapply,
        cancel,
      );
      reapply.focus();
    } catch (error) {
      box.append(errorBox(error));
      reload.disabled = false;
    }
  });
  box.append(reload);
  return box;
}

// One row per field: what the person read, what is there now (theirs), and what their change
// makes of it (yours). A row is marked where they changed it, where you change it, and where
// both did and disagree.
function diffTable(base, theirs, yours) {
  const fields = [...new Set([...Object.keys(theirs || {}), ...Object.keys(yours || {})])].filter(
    (f) => !["id", "links", "etag"].includes(f),
  );
  const show = (v) => (v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const rows = fields.map((f) => {
    const was = base ? base[f] : undefined;
    const theyChanged = base && show(was) !== show(theirs[f]);
    const youChange = show(yours[f]) !== show(theirs[f]);
    const mark = theyChanged && youChange ? "both" : theyChanged ? "theirs" : youChange ? "yours" : "same";
    const says = { both: "both changed: yours wins", theirs: "they changed", yours: "you change", same: "unchanged" };
    return h(
      "tr",
      { class: `diff-${mark}`, dataset: { field: f } },
      h("th", { scope: "row", "data-label": "Field" }, f),
      base ? h("td", { "data-label": "When you read it" }, show(was)) : null,
      h("td", { "data-label": "Theirs (now)", class: "theirs" }, show(theirs[f])),
      h("td", { "data-label": "Yours (reapplied)", class: "yours" }, show(yours[f])),
      h("td", { "data-label": "", class: "says" }, says[mark]),
    );
  });
  return h(
    "table",
    { id: "conflict-diff", class: "cards diff" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Field"),
        base ? h("th", { scope: "col" }, "When you read it") : null,
        h("th", { scope: "col" }, "Theirs (now)"),
        h("th", { scope: "col" }, "Yours (reapplied)"),
        h("th", { scope: "col" }, ""),
      ),
    ),
    h("tbody", {}, rows),
  );
}

function stripLinks(body) {
  if (!body || typeof body !== "object") return body;
  const { links, ...rest } = body;
  return rest;
}

// Hidden write forms leave a note saying why, in the API's own words.
function readOnlyNote() {
  return h(
    "p",
    { class: "notice readonly", id: "read-only" },
    `${readOnlyReason() || "This key may not write."} So the page offers no changes here: `,
    "forget the key (top right) and use one with the write scope to make them.",
  );
}

// ------------------------------------------------------------------ lists

function listControls(route, params, filters) {
  const query = h("input", { type: "search", name: "query", value: params.get("query") || "" });
  const form = h(
    "form",
    { class: "filters", role: "search" },
    field("Search", query),
    filters.map(([label, name, options, none]) => {
      const chooser = select({ name }, ["", ...options], params.get(name) || "");
      chooser.options[0].textContent = none || "any";
      return field(label, chooser);
    }),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) next.set(name, value);
    location.hash = `#/${route}${next.size ? `?${next}` : ""}`;
  });
  return form;
}

function pager(route, page) {
  const nav = h("nav", { class: "pager", "aria-label": "Pages" });
  for (const [rel, text] of [
    ["first", "First"],
    ["prev", "Previous"],
    ["next", "Next"],
    ["last", "Last"],
  ]) {
    const href = hrefOf(page.links, rel);
    if (href) nav.append(h("a", { href: `#/${route}?${pageParams(href)}`, rel }, text));
  }
  const last = Math.min(page.offset + page.items.length, page.total);
  nav.prepend(h("span", {}, page.total ? `${page.offset + 1}–${last} of ${page.total}` : "none"));
  return nav;
}

function apiQuery(params, allowed) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const name of allowed) if (params.get(name)) query.set(name, params.get(name));
  return query;
}

// What an empty list says: why it is empty, and what to do next.
function emptyState(id, noun, params, filters, canWrite, createHint) {
  const filtered = filters.some((f) => params.get(f));
  const text = filtered
    ? [`No ${noun} match these filters. `, h("a", { href: `#/${id}` }, "Clear them"), " to see them all."]
    : canWrite
      ? [`No ${noun} yet. ${createHint}`]
      : [`No ${noun} yet, and this key may only read: a key with the write scope can create them.`];
  return h("p", { class: "empty", id: `${id}-empty` }, ...text);
}

async function itemsView(params) {
  const [page, canWrite] = await Promise.all([
    get(`${ITEMS}?${apiQuery(params, ["offset", "query", "state"])}`).then((r) => r.body),
    mayWrite(),
  ]);
  const name = h("input", { name: "name", required: true, maxlength: "200", id: "new-item-name" });
  const create = h(
    "form",
    { class: "card", id: "create-item" },
    h("h2", {}, "New item"),
    field("Name", name),
    h("button", { type: "submit" }, "Create"),
    h("div", { class: "outcome" }),
  );
  create.addEventListener("submit", (event) => {
    event.preventDefault();
    perform(
      {
        label: `Create “${name.value}”`,
        command: "CreateInventoryItemCommand",
        url: ITEMS,
        body: { name: name.value },
        rebase: (fresh) => fresh,
        project: (fresh) => fresh,
        done: (result) => {
          flash = h("p", { class: "notice" }, `Created “${name.value}”.`);
          location.hash = `#/items/${idOf(result.headers.get("Location"))}`;
        },
      },
      create,
    );
  });
  const rows = page.items.map((item) =>
    h(
      "tr",
      {},
      h("td", { "data-label": "Name" }, h("a", { href: `#/items/${item.id}` }, item.name)),
      h("td", { "data-label": "State" }, item.active === false ? "deactivated" : "active"),
    ),
  );
  const list = page.items.length
    ? [
        h(
          "table",
          { id: "items", class: "cards" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "State"))),
          h("tbody", {}, rows),
        ),
        pager("items", page),
      ]
    : [emptyState("items", "items", params, ["query", "state"], canWrite, "Create the first one below: give it a name.")];
  return [
    h("h1", { tabindex: "-1" }, "Inventory items"),
    listControls("items", params, [["State", "state", ["active", "deactivated", "all"], "active (default)"]]),
    ...list,
    canWrite ? create : readOnlyNote(),
  ];
}

// A random UUID; crypto.randomUUID exists only in secure contexts (https, localhost), and a
// team may well open the client over plain http on another host.
function uuid4() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function idOf(location_) {
  return location_ ? location_.split("/").pop() : "";
}

async function carsView(params) {
  const [page, canWrite] = await Promise.all([
    get(`${CARS}?${apiQuery(params, ["offset", "query", "make", "color", "state"])}`).then((r) => r.body),
    mayWrite(),
  ]);
  const rows = page.items.map((car) =>
    h(
      "tr",
      { class: car.active === false ? "retired" : null },
      h("td", { "data-label": "Car" }, h("a", { href: `#/cars/${car.id}` }, `${car.year} ${car.make} ${car.model}`)),
      h("td", { "data-label": "Color" }, car.color),
      h("td", { "data-label": "Mileage", class: "num" }, car.mileage),
      h("td", { "data-label": "Condition" }, car.condition),
      h("td", { "data-label": "VIN" }, h("code", {}, car.vin)),
      h("td", { "data-label": "State", class: "state" }, car.active === false ? "retired" : "active"),
    ),
  );
  const year = new Date().getFullYear();
  const fresh = {
    year,
    make: "BMW",
    model: "M3",
    color: "blue",
    mileage: 0,
    vin: "",
    condition: "excellent",
    owner: uuid4(),
  };
  const form = carForm(fresh, false, "create-car");
  form.prepend(h("h2", {}, "New car"));
  form.append(h("button", { type: "submit" }, "Create"), h("div", { class: "outcome" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = readCar(form);
    perform(
      {
        label: `Create the ${body.make} ${body.model}`,
        command: "CarRepresentation",
        method: "POST",
        url: CARS,
        body,
        rebase: (b) => b,
        project: (b) => b,
        done: (result) => {
          flash = h("p", { class: "notice" }, "Car created.");
          location.hash = `#/cars/${idOf(result.headers.get("Location"))}`;
        },
      },
      form,
    );
  });
  const list = page.items.length
    ? [
        h(
          "table",
          { id: "cars", class: "cards" },
          h(
            "thead",
            {},
            h("tr", {}, ["Car", "Color", "Mileage", "Condition", "VIN", "State"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h("tbody", {}, rows),
        ),
        pager("cars", page),
      ]
    : [
        emptyState(
          "cars",
          "cars",
          params,
          ["query", "make", "color", "state"],
          canWrite,
          "Create the first one below: a VIN is all it needs beyond the defaults.",
        ),
      ];
  return [
    h("h1", { tabindex: "-1" }, "Cars"),
    listControls("cars", params, [
      ["Make", "make", Object.keys(MODELS)],
      ["Color", "color", COLORS],
      ["State", "state", ["active", "deactivated", "all"], "active (default)"],
    ]),
    ...list,
    canWrite ? form : readOnlyNote(),
  ];
}

// ------------------------------------------------------------------ one item

async function loadOrGone(url) {
  try {
    return await get(url);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 410 || error.status === 404)) return error;
    throw error;
  }
}

async function itemView(id, params) {
  const url = `${ITEMS}/${id}`;
  const version = params.get("version");
  const [result, canWrite] = await Promise.all([
    loadOrGone(version !== null ? `${url}?version=${encodeURIComponent(version)}` : url),
    mayWrite(),
  ]);
  const view = [h("p", {}, h("a", { href: "#/items" }, "← All items"))];
  if (result instanceof ApiError) {
    view.push(
      h("h1", { tabindex: "-1" }, result.status === 410 ? "Deactivated item" : "No such item"),
      h("p", { id: "item-gone" }, `${result.status}: ${result.message} `, codeLink(result.problem)),
    );
    // A deactivated item keeps its history; an unknown one has none to show (and its 404
    // is said once, above).
    if (result.status === 404) return [...view, h("p", { class: "empty" }, h("a", { href: "#/items" }, "Back to the list"), " to pick an item, or create one there.")];
  } else {
    const item = result.body;
    view.push(
      h("h1", { tabindex: "-1", id: "item-name" }, item.name),
      version !== null ? asOf(result, version, `#/items/${id}`) : null,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "In stock"),
        h("dd", { id: "item-count" }, item.currentCount),
        h("dt", {}, "ETag"),
        h("dd", {}, h("code", { id: "item-etag" }, shortTag(result.etag))),
      ),
    );
    if (version === null) view.push(canWrite ? itemActions(url, item, result.etag) : readOnlyNote());
  }
  view.push(await historySection(`${url}/history`, `#/items/${id}`, params));
  return view;
}

function asOf(result, version, current) {
  return h(
    "p",
    { class: "memento", id: "as-of" },
    `As of version ${version}`,
    result.headers.get("Memento-Datetime") ? ` (${result.headers.get("Memento-Datetime")})` : "",
    ": a past state, read-only. ",
    h("a", { href: current }, "Back to the current state"),
  );
}

// What each item command makes of a state, for the 412 diff.
const ITEM_EFFECT = {
  RenameInventoryItemCommand: (state, body) => ({ ...state, name: body.newName }),
  CheckInItemsToInventoryCommand: (state, body) => ({ ...state, currentCount: state.currentCount + body.count }),
  RemoveItemsFromInventoryCommand: (state, body) => ({ ...state, currentCount: state.currentCount - body.count }),
  DeactivateInventoryItemCommand: (state) => ({ ...state, active: false }),
};

function itemActions(url, item, etag) {
  const reload = () => route();
  const forms = [];
  const base = stripLinks(item);
  const action = (id, title, command, input, body, method, confirm) => {
    const form = h(
      "form",
      { class: "card", id },
      h("h2", {}, title),
      input ? field(input.dataset.label, input) : h("p", { class: "hint" }, confirm.text),
      h("button", { type: "submit", class: method === "DELETE" ? "danger" : null }, title),
      h("div", { class: "outcome" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const payload = body();
      perform(
        {
          label: input ? `${title} ${input.dataset.say}${input.value}${input.dataset.end || ""}` : title,
          command,
          url,
          body: payload,
          etag,
          method,
          base,
          confirm,
          rebase: () => payload,
          project: (fresh, sent) => ITEM_EFFECT[command](fresh, sent),
          done: reload,
        },
        form,
      );
    });
    forms.push(form);
  };
  const newName = h("input", { name: "newName", required: true, maxlength: "200", value: item.name, dataset: { label: "New name", say: "to “", end: "”" } });
  action("rename", "Rename", "RenameInventoryItemCommand", newName, () => ({ newName: newName.value }));
  const inCount = h("input", { name: "count", type: "number", min: "1", required: true, value: "1", dataset: { label: "How many", say: "" } });
  action("check-in", "Check in", "CheckInItemsToInventoryCommand", inCount, () => ({ count: Number(inCount.value) }));
  const outCount = h("input", { name: "count", type: "number", min: "1", required: true, value: "1", dataset: { label: "How many", say: "" } });
  action("remove", "Remove", "RemoveItemsFromInventoryCommand", outCount, () => ({ count: Number(outCount.value) }));
  action("deactivate", "Deactivate", "DeactivateInventoryItemCommand", null, () => ({}), "DELETE", {
    title: `Deactivate “${item.name}”?`,
    text: "Deactivating cannot be undone: the item leaves the list, answers 410 Gone and takes no more commands. Its history stays readable.",
    yes: "Deactivate",
  });
  return h("div", { class: "actions" }, forms);
}

async function historySection(url, base, params) {
  const offset = params.get("hoffset") || "0";
  const section = h("section", { id: "history", "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "History"));
  let page;
  try {
    page = (await get(`${url}?offset=${encodeURIComponent(offset)}&limit=${PAGE}`)).body;
  } catch (error) {
    section.append(errorBox(error));
    return section;
  }
  // A table on a wide screen; on a phone each row is a card (app.css), labelled by data-label.
  const rows = page.items.map((entry) =>
    h(
      "tr",
      {
        dataset: { version: entry.version },
        class: String(entry.version) === params.get("version") ? "viewed" : null,
        "aria-current": String(entry.version) === params.get("version") ? "true" : null,
      },
      h("td", { class: "num", "data-label": "Version" }, entry.version),
      h("td", { class: "type", "data-label": "Event" }, entry.type),
      h("td", { "data-label": "Time (UTC)" }, h("time", { datetime: entry.time }, entry.time.replace("T", " ").slice(0, 19))),
      h("td", { class: "data", "data-label": "Data" }, h("code", {}, JSON.stringify(withoutType(entry.data)))),
      h("td", { class: "by", "data-label": "By" }, entry.principal || "—"),
      h("td", { "data-label": "" }, h("a", { href: `${base}?version=${entry.version}`, class: "as-of" }, `View as of v${entry.version}`)),
    ),
  );
  section.append(
    h(
      "table",
      { class: "cards history" },
      h(
        "thead",
        {},
        h("tr", {}, ["Version", "Event", "Time (UTC)", "Data", "By", ""].map((t) => h("th", { scope: "col" }, t))),
      ),
      h("tbody", {}, rows),
    ),
  );
  const nav = h("nav", { class: "pager", "aria-label": "History pages" });
  for (const [rel, text] of [["prev", "Older"], ["next", "Newer"]]) {
    const href = hrefOf(page.links, rel);
    if (href) {
      const next = new URLSearchParams(params);
      next.set("hoffset", new URL(href).searchParams.get("offset") || "0");
      nav.append(h("a", { href: `${base}?${next}` }, text));
    }
  }
  if (nav.children.length) section.append(nav);
  return section;
}

function withoutType(data) {
  if (!data || typeof data !== "object") return data;
  const { type, ...rest } = data;
  return rest;
}

// ------------------------------------------------------------------ one car

function carForm(car, editing, id) {
  const make = select({ name: "make", disabled: editing }, Object.keys(MODELS), car.make);
  const model = select({ name: "model", disabled: editing }, MODELS[car.make] || [], car.model);
  make.addEventListener("change", () => {
    model.replaceChildren(...MODELS[make.value].map((m) => h("option", { value: m }, m)));
  });
  const form = h(
    "form",
    { class: "card car", id },
    h(
      "div",
      { class: "grid" },
      field("Year", h("input", { name: "year", type: "number", required: true, value: car.year, readonly: editing })),
      field("Make", make),
      field("Model", model),
      field("Color", select({ name: "color" }, COLORS, car.color)),
      field("Mileage", h("input", { name: "mileage", type: "number", min: "0", required: true, value: car.mileage })),
      field("Condition", select({ name: "condition" }, CONDITIONS, car.condition)),
      field(
        "VIN",
        // Lower case is fine: the client upper-cases it (readCar), and shows it so (app.css).
        h("input", { name: "vin", required: true, value: car.vin, readonly: editing, pattern: "[A-HJ-NPR-Za-hj-npr-z0-9]{17}", autocapitalize: "characters", spellcheck: "false", title: "17 letters and digits, no I, O or Q" }),
        editing ? null : "17 letters and digits, no I, O or Q",
      ),
      field("Owner", h("input", { name: "owner", required: true, value: car.owner, class: "wide" }), "a UUID"),
    ),
  );
  return form;
}

function readCar(form) {
  const value = (name) => form.elements.namedItem(name).value;
  return {
    year: Number(value("year")),
    make: value("make"),
    model: value("model"),
    color: value("color"),
    mileage: Number(value("mileage")),
    vin: value("vin").trim().toUpperCase(),
    condition: value("condition"),
    owner: value("owner").trim(),
  };
}

// Which events did the last write append? The 202 says how many; history says which.
async function newEvents(historyUrl, count) {
  if (!count) return [];
  const head = (await get(`${historyUrl}?limit=1`)).body;
  const from = Math.max(0, head.total - count);
  const page = (await get(`${historyUrl}?offset=${from}&limit=${count}`)).body;
  return page.items;
}

async function carView(id, params) {
  const url = `${CARS}/${id}`;
  const version = params.get("version");
  const [result, canWrite] = await Promise.all([
    loadOrGone(version !== null ? `${url}?version=${encodeURIComponent(version)}` : url),
    mayWrite(),
  ]);
  const view = [h("p", {}, h("a", { href: "#/cars" }, "← All cars"))];
  if (result instanceof ApiError) {
    view.push(
      h("h1", { tabindex: "-1" }, result.status === 410 ? "Retired car" : "No such car"),
      h("p", { id: "car-gone" }, `${result.status}: ${result.message} `, codeLink(result.problem)),
    );
    if (result.status === 404) return [...view, h("p", { class: "empty" }, h("a", { href: "#/cars" }, "Back to the list"), " to pick a car, or create one there.")];
  } else {
    const car = result.body;
    view.push(
      h("h1", { tabindex: "-1", id: "car-title" }, `${car.year} ${car.make} ${car.model}`),
      version !== null ? asOf(result, version, `#/cars/${id}`) : null,
      h("p", {}, "ETag ", h("code", { id: "car-etag" }, shortTag(result.etag))),
    );
    const form = carForm(car, true, "edit-car");
    if (version !== null || !canWrite) {
      // A past state, or a key that may only read: the same fields, visibly not editable.
      for (const el of form.elements) el.disabled = true;
      form.classList.add("frozen");
      view.push(form);
      if (version === null) view.push(readOnlyNote());
    } else {
      view.push(carEditing(url, car, result.etag, form));
    }
  }
  view.push(await historySection(`${url}/history`, `#/cars/${id}`, params));
  return view;
}

function carEditing(url, car, etag, form) {
  form.prepend(
    h("h2", {}, "Edit"),
    h("p", { class: "hint" }, `Saving PUTs the whole car; the API compares it with the current state and appends one event per difference (the trigger pattern). Fixed once created: ${IMMUTABLE.join(", ")}.`),
  );
  form.append(h("button", { type: "submit", id: "save-car" }, "Save (PUT)"), h("div", { class: "outcome" }));
  const base = pick(car, CAR_FIELDS);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const edited = readCar(form);
    // On a conflict, reapply only what the person changed, over the current state.
    const changed = Object.fromEntries(CAR_FIELDS.filter((f) => String(edited[f]) !== String(car[f])).map((f) => [f, edited[f]]));
    perform(
      {
        label: "Save the car",
        command: "CarRepresentation",
        url,
        body: edited,
        etag,
        base,
        rebase: (fresh) => ({ ...pick(fresh, CAR_FIELDS), ...changed }),
        project: (fresh, sent) => sent,
        done: async (result) => {
          const events = await newEvents(`${url}/history`, result.body.eventsAppended);
          flash = h(
            "section",
            { class: "notice", id: "put-events", "aria-labelledby": "put-events-title" },
            h("h2", { id: "put-events-title" }, `This PUT produced ${events.length} event(s)`),
            events.length
              ? h("ol", {}, events.map((e) => h("li", { class: "type" }, `${e.type} `, h("code", {}, JSON.stringify(withoutType(e.data))))))
              : h("p", {}, "Nothing changed, so nothing was appended."),
          );
          await route();
        },
      },
      form,
    );
  });
  const retireForm = h(
    "form",
    { class: "card", id: "retire" },
    h("h2", {}, "Retire"),
    h("p", { class: "hint" }, "DELETE with If-Match: one CarDeleted event; the car then answers 410. This cannot be undone."),
    h("button", { type: "submit", class: "danger" }, "Retire this car"),
    h("div", { class: "outcome" }),
  );
  retireForm.addEventListener("submit", (event) => {
    event.preventDefault();
    perform(
      {
        label: "Retire the car",
        command: null, // a DELETE with no body names no domain-model
        url,
        etag,
        base,
        confirm: {
          title: `Retire the ${car.year} ${car.make} ${car.model}?`,
          text: `Retiring cannot be undone: VIN ${car.vin} will answer 410 Gone and take no more changes. Its history stays readable.`,
          yes: "Retire",
        },
        rebase: () => undefined,
        project: (fresh) => ({ ...fresh, active: false }),
        done: () => route(),
      },
      retireForm,
    );
  });
  return h("div", { class: "actions" }, form, retireForm);
}

function pick(object, names) {
  return Object.fromEntries(names.map((n) => [n, object[n]]));
}

// ------------------------------------------------------------------ router

const ROUTES = [
  [/^\/items$/, (m, p) => itemsView(p)],
  [/^\/items\/([0-9a-f-]{36})$/, (m, p) => itemView(m[1], p)],
  [/^\/cars$/, (m, p) => carsView(p)],
  [/^\/cars\/([0-9a-f-]{36})$/, (m, p) => carView(m[1], p)],
];

async function route(navigated = false) {
  const hash = location.hash.slice(1) || "/items";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const ticket = ++rendering;
  // After a write the view is rendered again: keep the keyboard where it was.
  const active = document.activeElement;
  const form = active && active !== main ? active.closest("form[id]") : null;
  const keep = form ? `#${form.id} ${active.name ? `[name="${active.name}"]` : active.localName}` : null;
  main.setAttribute("aria-busy", "true");
  let content;
  try {
    const found = ROUTES.map(([re, view]) => [path.match(re), view]).find(([m]) => m);
    content = found ? await found[1](found[0], params) : [h("h1", { tabindex: "-1" }, "Not found")];
  } catch (error) {
    content = [h("h1", { tabindex: "-1" }, "Something went wrong"), errorBox(error)];
  }
  if (ticket !== rendering) return; // a newer navigation won
  main.replaceChildren(...[flash, ...content].filter(Boolean));
  flash = null;
  if (statusLine.dataset.path && statusLine.dataset.path !== hash) {
    statusLine.textContent = "";
    delete statusLine.dataset.path;
  }
  main.dataset.view = path;
  main.removeAttribute("aria-busy");
  for (const link of document.querySelectorAll("nav a")) {
    if (path.startsWith(link.getAttribute("href").slice(1))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (navigated) main.querySelector("h1")?.focus();
  else if (keep) main.querySelector(keep)?.focus();
  document.getElementById("forget-key").hidden = !apiKey();
}

// ------------------------------------------------------------------ API key and log

const dialog = document.getElementById("key-dialog");
setKeyPrompt(
  (why) =>
    new Promise((resolve) => {
      const form = document.getElementById("key-form");
      const input = document.getElementById("key-input");
      document.getElementById("key-why").textContent = `The API answered 401: ${why || "it wants an API key."}`;
      input.value = "";
      const done = (value) => {
        form.removeEventListener("submit", submit);
        dialog.removeEventListener("cancel", cancel);
        if (dialog.open) dialog.close();
        resolve(value);
      };
      const submit = (event) => {
        event.preventDefault();
        done(input.value.trim());
      };
      const cancel = () => done(null);
      form.addEventListener("submit", submit);
      dialog.addEventListener("cancel", cancel);
      dialog.showModal();
      input.focus();
    }),
);

document.getElementById("forget-key").addEventListener("click", () => {
  forgetKey();
  say("API key forgotten.");
  route();
});

// The exchange log: one line per request, each opening to the request and the response in
// full, the error code linked to its page, and the request as curl.
const log = document.getElementById("exchange-log");
let logged = 0;
onExchange((x) => {
  const url = new URL(x.url);
  const path = url.pathname + url.search;
  const failed = x.status >= 400;
  const request = [
    `${x.method} ${path} HTTP/1.1`,
    ...x.requestHeaders.map(([n, v]) => `${headerName(n)}: ${n === "authorization" ? "Bearer ••••••• (this tab's key)" : v}`),
    ...(x.requestBody !== null ? ["", pretty(x.requestBody)] : []),
  ].join("\n");
  const response = [
    `HTTP/1.1 ${x.status} ${x.statusText}`,
    ...x.responseHeaders.map(([n, v]) => `${headerName(n)}: ${v}`),
    ...(x.responseBody ? ["", pretty(x.responseBody)] : []),
  ].join("\n");
  const curl = asCurl(x);
  const copy = h("button", { type: "button", class: "copy secondary" }, "Copy as curl");
  const copied = h("span", { class: "copied", role: "status" });
  copy.addEventListener("click", async () => {
    copied.textContent = (await copyText(curl)) ? "Copied." : "Select the command above and copy it.";
  });
  const model = (x.requestHeaders.find(([n]) => n === "content-type") || [])[1] || "";
  const named = /domain-model=([^;\s]+)/.exec(model);
  log.prepend(
    h(
      "li",
      { class: failed ? "exchange failed" : "exchange", dataset: { status: x.status, method: x.method } },
      h(
        "details",
        {},
        h(
          "summary",
          {},
          h("code", { class: "line" }, `${x.method} ${path}`),
          " → ",
          h("strong", { class: "status" }, `${x.status}`),
          named ? h("span", { class: "model" }, ` ${named[1]}`) : null,
          x.note ? h("span", { class: "note" }, ` (${x.note})`) : null,
        ),
        x.problem && x.problem.errorCode
          ? h("p", {}, `${x.status}: ${x.problem.detail || x.problem.title || ""} `, codeLink(x.problem))
          : null,
        h("h3", {}, "Request"),
        h("pre", { class: "request" }, request),
        h("h3", {}, "Response"),
        h("pre", { class: "response" }, response),
        h("h3", {}, "As curl"),
        h("pre", { class: "curl" }, curl),
        copy,
        copied,
      ),
    ),
  );
  logged += 1;
  document.getElementById("exchange-count").textContent = logged > 30 ? `(the last 30 of ${logged})` : `(${logged})`;
  while (log.children.length > 30) log.lastChild.remove();
});

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 1);
  } catch {
    return text;
  }
}

// The Clipboard API needs a secure context (https or localhost); elsewhere, the old way.
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h("textarea", { class: "offscreen", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

window.addEventListener("hashchange", () => route(true));
if (!location.hash) history.replaceState(null, "", "#/items");
route();
