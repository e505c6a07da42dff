// esdblocal's stream browser: plain JavaScript over EventStoreDB's AtomPub JSON API.
// Routes live in the fragment, as in EventStoreDB's own UI (#/streams/{stream}/{event}), so the
// server's text/html redirects land here. Paging follows only links the server gave.
"use strict";

(() => {
  const ATOM = "application/vnd.eventstore.atom+json";
  const PAGE = 20;
  const POLL_SECONDS = "25";
  const main = document.getElementById("main");
  const statusLine = document.getElementById("status");
  let generation = 0; // bumped on every navigation: stale work checks it and stops
  let poller = null; // the AbortController of the live long poll, if any

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function status(text) {
    statusLine.textContent = text || "";
  }

  class HttpError extends Error {
    constructor(status, text) {
      super(`${status} ${text}`);
      this.status = status;
    }
  }

  async function getJson(path, options = {}) {
    const response = await fetch(path, {
      headers: { Accept: options.accept || ATOM, ...(options.headers || {}) },
      signal: options.signal,
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!response.ok) throw new HttpError(response.status, response.statusText);
    return response.json();
  }

  const enc = (stream) => encodeURIComponent(stream);
  const streamRoute = (stream, ...rest) => ["#/streams", enc(stream), ...rest].join("/");
  const streamApi = (stream, ...rest) => ["/streams", enc(stream), ...rest].join("/");

  // A server link (absolute URL) → the browser's route for it.
  function routeOf(uri) {
    const url = new URL(uri, location.href);
    return "#" + url.pathname + url.search; // a filtered $all page keeps its filter
  }

  function apiOf(uri) {
    const url = new URL(uri, location.href);
    return url.pathname + url.search;
  }

  // A stream or type name: one line, cut with an ellipsis, the full name on hover (title)
  // and, for the keyboard, in the status line on focus.
  const nameLink = (href, name, attrs = {}) =>
    el("a", { href, class: "name", title: name, ...attrs }, name);

  const HIDE_SYSTEM = "esdblocal.hideSystemEvents";
  const hidingSystem = () => localStorage.getItem(HIDE_SYSTEM) !== "false";
  const ALL_WITHOUT_SYSTEM = `/streams/%24all/filtered/head/backward/${PAGE}?exclude-system-events=true`;

  const withEmbed = (path, embed) => path + (path.includes("?") ? "&" : "?") + `embed=${embed}`;

  // Where a projection-written stream's events can be read from $all instead.
  function fallbackOf(stream) {
    const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const filtered = (context, type, data) =>
      `#/streams/%24all/filtered/head/backward/${PAGE}?context=${context}&type=${type}&data=${enc(data)}`;
    if (stream.startsWith("$et-")) return filtered("eventtype", "regex", `^${escape(stream.slice(4))}$`);
    if (stream.startsWith("$ce-")) return filtered("streamid", "prefix", `${stream.slice(4)}-`);
    return null;
  }

  function link(feed, relation) {
    const found = (feed.links || []).find((l) => l.relation === relation);
    return found ? found.uri : null;
  }

  // "12@orders-1" → {number: 12, stream: "orders-1"}
  function parseTitle(title) {
    const at = title.indexOf("@");
    return { number: Number(title.slice(0, at)), stream: title.slice(at + 1) };
  }

  function when(text) {
    const date = new Date(text);
    return isNaN(date) ? text : date.toLocaleString();
  }

  function describe(error, stream) {
    if (error.status === 404) {
      const system = /^\$(ce|et|bc|category)-|^\$streams$/.test(stream || "");
      return [
        `Stream '${stream}' was not found.`,
        system
          ? " It is written by EventStoreDB's system projections; it appears once they run" +
            " and there are events for it."
          : "",
      ].join("");
    }
    if (error.status === 410) return `Stream '${stream}' has been deleted.`;
    if (error.status === 401) {
      return "Not authorized: sign in (your browser asks for a user; system streams and $all" +
        " need an admin).";
    }
    return `The server answered ${error.message}.`;
  }

  function page(title, ...content) {
    main.replaceChildren(el("h1", { text: title, title }), ...content.flat().filter((c) => c));
    document.title = `${title} · esdblocal`;
  }

  function failure(title, error, stream) {
    const fallback = error.status === 404 && stream ? fallbackOf(stream) : null;
    page(title, el("p", { class: "error", role: "alert" }, describe(error, stream)),
      fallback ? el("p", {}, el("a", { href: fallback, id: "fallback" }, "Read them from $all instead")) : null,
      el("p", {}, el("a", { href: "#/" }, "Back to the streams")));
  }

  function stopPolling() {
    if (poller) poller.abort();
    poller = null;
  }

  // ---------------------------------------------------------------- home

  async function showHome() {
    const mine = generation;
    page("Streams");
    const recent = el("ul", { class: "plain", id: "recent" });
    const created = el("ul", { class: "plain", id: "created" });
    const categories = el("ul", { class: "plain", id: "categories" });
    const types = el("ul", { class: "plain", id: "event-types" });
    const systemToggle = el("input", { type: "checkbox", id: "show-system" });
    const correlation = el("input", {
      id: "correlation-id", name: "correlation", placeholder: "correlation id",
      "aria-label": "Correlation id",
    });
    main.append(
      el("div", { class: "grid" },
        el("section", { class: "panel", "aria-labelledby": "h-recent" },
          el("h2", { id: "h-recent" }, "Recently written"),
          el("label", { class: "note" }, systemToggle, " include system streams"),
          recent),
        el("section", { class: "panel", "aria-labelledby": "h-created" },
          el("h2", { id: "h-created" }, "Recently created"), created),
        el("section", { class: "panel", "aria-labelledby": "h-categories" },
          el("h2", { id: "h-categories" }, "Categories"), categories),
        el("section", { class: "panel", "aria-labelledby": "h-types" },
          el("h2", { id: "h-types" }, "Event types"), types),
        el("section", { class: "panel", "aria-labelledby": "h-more" },
          el("h2", { id: "h-more" }, "More"),
          el("ul", { class: "plain" },
            el("li", { "data-row": "" }, el("a", { href: streamRoute("$all") }, "$all"),
              el("span", { class: "muted" }, " — every event, in order")),
            el("li", {}, el("form", {
              class: "inline-form", id: "correlation-form",
              onsubmit: (event) => {
                event.preventDefault();
                const id = correlation.value.trim();
                if (id) location.hash = `#/correlation/${enc(id)}`;
              },
            }, correlation, el("button", { type: "submit" }, "Events of")))))),
    );
    const fill = async () => {
      try {
        const feed = await getJson("/streams/%24all/head/backward/200?embed=rich");
        if (mine !== generation) return;
        const seen = new Map();
        for (const entry of feed.entries) {
          const name = entry.positionStreamId || parseTitle(entry.title).stream;
          if (!systemToggle.checked && name.startsWith("$")) continue;
          if (!seen.has(name)) seen.set(name, entry);
        }
        recent.replaceChildren(...[...seen].slice(0, 20).map(([name, entry]) =>
          el("li", { "data-row": "" }, nameLink(streamRoute(name), name),
            el("span", { class: "muted", title: entry.eventType || entry.summary },
              ` · ${entry.eventType || entry.summary}`))));
        if (!seen.size) recent.append(el("li", { class: "muted" }, "No events yet."));
      } catch (error) {
        recent.replaceChildren(el("li", { class: "muted" }, describe(error, "$all")));
      }
    };
    systemToggle.addEventListener("change", fill);
    await Promise.all([
      fill(),
      (async () => {
        try {
          const feed = await getJson("/streams/%24streams/head/backward/20");
          if (mine !== generation) return;
          created.replaceChildren(...feed.entries.map((entry) => {
            const name = parseTitle(entry.title).stream;
            return el("li", { "data-row": "" }, nameLink(streamRoute(name), name),
              el("span", { class: "muted" }, ` · ${when(entry.updated)}`));
          }));
          if (!feed.entries.length) created.append(el("li", { class: "muted" }, "None yet."));
        } catch (error) {
          if (error.status !== 404) {
            created.replaceChildren(el("li", { class: "muted" }, describe(error, "$streams")));
            return;
          }
          // No $streams (the system projections are not running): esdblocal's own list.
          try {
            const listing = await getJson("/esdblocal/streams?order=created&limit=60",
              { accept: "application/json" });
            if (mine !== generation) return;
            const names = listing.streams.map((s) => s.streamId).filter((n) => !n.startsWith("$"));
            created.replaceChildren(...names.slice(0, 20).map((name) =>
              el("li", { "data-row": "" }, nameLink(streamRoute(name), name))));
            if (!names.length) created.append(el("li", { class: "muted" }, "None yet."));
            created.append(el("li", { class: "note", id: "created-note" },
              "From esdblocal's stream list: the $streams stream appears when the system projections run."));
          } catch (inner) {
            created.replaceChildren(el("li", { class: "muted" }, describe(inner)));
          }
        }
      })(),
      (async () => {
        try {
          const listing = await getJson("/esdblocal/streams?limit=1000", { accept: "application/json" });
          if (mine !== generation) return;
          const counts = new Map();
          for (const { streamId } of listing.streams) {
            const dash = streamId.indexOf("-");
            if (streamId.startsWith("$") || dash <= 0) continue;
            const category = streamId.slice(0, dash);
            counts.set(category, (counts.get(category) || 0) + 1);
          }
          categories.replaceChildren(...[...counts].sort().map(([category, count]) =>
            el("li", { "data-row": "" },
              nameLink(`#/category/${enc(category)}`, category),
              el("span", { class: "muted" }, ` · ${count}${listing.more ? "+" : ""} streams`))));
          if (!counts.size) categories.append(el("li", { class: "muted" }, "None yet (a category is the part of a stream name before its first '-')."));
        } catch (error) {
          categories.replaceChildren(el("li", { class: "muted" }, describe(error)));
        }
      })(),
      (async () => {
        try {
          const listing = await getJson("/esdblocal/event-types", { accept: "application/json" });
          if (mine !== generation) return;
          const user = listing.eventTypes.filter((t) => !t.eventType.startsWith("$"));
          types.replaceChildren(...user.slice(0, 30).map(({ eventType, count }) =>
            el("li", { "data-row": "" },
              nameLink(`#/type/${enc(eventType)}`, eventType),
              el("span", { class: "muted" }, ` · ${count}`))));
          if (!user.length) types.append(el("li", { class: "muted" }, "None yet."));
        } catch (error) {
          types.replaceChildren(el("li", { class: "muted" }, describe(error)));
        }
      })(),
    ]);
  }

  // ---------------------------------------------------------------- lists of streams

  async function showListing(title, prefix, extra) {
    const mine = generation;
    const list = el("ul", { class: "plain", id: "stream-list" });
    page(title, ...(extra || []), list);
    try {
      const listing = await getJson(`/esdblocal/streams?limit=200&prefix=${enc(prefix)}`,
        { accept: "application/json" });
      if (mine !== generation) return;
      list.replaceChildren(...listing.streams.map(({ streamId, lastEventNumber }) =>
        el("li", { "data-row": "" }, nameLink(streamRoute(streamId), streamId),
          el("span", { class: "muted" }, ` · ${lastEventNumber + 1} events`))));
      if (!listing.streams.length) list.append(el("li", { class: "muted" }, `No stream starts with '${prefix}'.`));
      if (listing.more) list.append(el("li", { class: "muted" }, "More streams match: narrow the prefix."));
    } catch (error) {
      list.replaceChildren(el("li", { class: "error" }, describe(error)));
    }
  }

  function showSearch(prefix) {
    document.getElementById("search-input").value = prefix;
    return showListing(`Streams starting with '${prefix}'`, prefix);
  }

  async function showCategory(category) {
    const stream = `$ce-${category}`;
    const note = el("p", { class: "note", id: "category-stream" }, "Looking for ", stream, "…");
    const shown = showListing(`Category ${category}`, `${category}-`, [note]);
    try {
      await getJson(streamApi(stream, "head", "backward", "1"));
      note.replaceChildren("Its events in order: ", el("a", { href: streamRoute(stream) }, stream), ".");
    } catch (error) {
      note.replaceChildren(...(error.status === 404
        ? [`${stream} does not exist (the $by_category system projection writes it): `,
          el("a", { href: fallbackOf(stream), id: "fallback" }, "read its events from $all"),
          ". Its streams:"]
        : [describe(error, stream)]));
    }
    await shown;
  }

  // An event type: its $et- stream where the system projection writes one, else from $all.
  async function showType(type) {
    const mine = generation;
    const stream = `$et-${type}`;
    page(`Event type ${type}`, el("p", { class: "note" }, "Looking for ", stream, "…"));
    const found = await exists(streamApi(stream, "head", "backward", "1"));
    if (mine !== generation) return;
    location.replace(found ? streamRoute(stream) : fallbackOf(stream));
  }

  // A correlation id: the $bc- stream the $by_correlation_id projection writes.
  async function showCorrelation(id) {
    const mine = generation;
    const stream = `$bc-${id}`;
    page(`Correlation ${id}`, el("p", { class: "note" }, "Looking for ", stream, "…"));
    const found = await exists(streamApi(stream, "head", "backward", "1"));
    if (mine !== generation) return;
    if (found) {
      location.replace(streamRoute(stream));
      return;
    }
    page(`Correlation ${id}`,
      el("p", { class: "note", id: "no-correlation" }, `There is no ${stream} stream: the $by_correlation_id`,
        " system projection writes one for each correlation id in events' metadata",
        " ($correlationId). It is not running, or no event carries this id."),
      el("p", {}, el("a", { href: "#/" }, "Back to the streams")));
  }

  // ---------------------------------------------------------------- a stream's page

  function isAll(stream) {
    return stream === "$all";
  }

  function atHead(stream, feed, path) {
    if (!isAll(stream)) return Boolean(feed.headOfStream);
    // $all never says so: the head page is read from "head", a forward page is at the head when short.
    return /\/head\/backward\//.test(path) || (/\/forward\//.test(path) && feed.entries.length < countOf(path));
  }

  function countOf(path) {
    const parts = path.split("/");
    return Number(parts[parts.length - 1]) || PAGE;
  }

  function entryRow(entry, showStream, fresh) {
    const target = parseTitle(entry.title);
    const viaLink = entry.summary === "$>" && entry.positionStreamId &&
      entry.positionStreamId !== target.stream;
    return el("tr", { "data-row": "", class: fresh.has(entry.id + entry.positionEventNumber) ? "new" : null },
      el("td", { "data-label": "Event" }, nameLink(routeOf(entry.id), entry.title)),
      el("td", { "data-label": "Type" }, el("span", { class: "name", title: entry.eventType || entry.summary },
        entry.eventType || entry.summary)),
      showStream ? el("td", { "data-label": "Stream" },
        nameLink(streamRoute(target.stream), target.stream),
        viaLink ? el("span", { class: "muted", title: `link ${entry.positionEventNumber}@${entry.positionStreamId}` },
          ` (link ${entry.positionEventNumber}@${entry.positionStreamId})`) : null)
        : null,
      el("td", { "data-label": "Written" }, when(entry.updated)));
  }

  async function showStream(stream, path, fresh = new Set(), filtered = false) {
    const mine = generation;
    let api = path || streamApi(stream, "head", "backward", String(PAGE));
    if (isAll(stream) && !path && hidingSystem()) {
      api = ALL_WITHOUT_SYSTEM; // the server's own filter, so pages stay full
      filtered = true;
    }
    status("Loading…");
    let feed;
    try {
      feed = await getJson(withEmbed(api, "rich"));
    } catch (error) {
      if (mine !== generation) return;
      status("");
      failure(stream, error, stream);
      return;
    }
    if (mine !== generation) return;
    const head = atHead(stream, feed, api);
    const button = (label, relation, key, enabled) => {
      const uri = link(feed, relation);
      const usable = enabled && uri;
      return el("a", {
        class: "button", role: "button", "data-rel": relation, "aria-keyshortcuts": key,
        href: usable ? routeOf(uri) : null, "aria-disabled": usable ? null : "true",
        tabindex: usable ? null : "-1", style: usable ? null : "opacity:.45;pointer-events:none",
      }, label);
    };
    const showStreamColumn = isAll(stream) || stream.startsWith("$") ||
      feed.entries.some((e) => parseTitle(e.title).stream !== stream);
    const rows = feed.entries.map((entry) => entryRow(entry, showStreamColumn, fresh));
    const pager = el("nav", { class: "pager", "aria-label": "Pages" },
      button("⇤ Newest", "first", null, !head),
      button("← Newer", "previous", "[", !head),
      button("Older →", "next", "]", true),
      button("Oldest ⇥", "last", null, true),
      el("span", { class: "live", id: "live" }, head && !filtered ? "Live: new events appear here" : ""));
    const table = el("table", { id: "events" },
      el("thead", {}, el("tr", {},
        el("th", { class: "col-event" }, "Event"), el("th", { class: "col-type" }, "Type"),
        showStreamColumn ? el("th", { class: "col-stream" }, "Stream") : null,
        el("th", { class: "col-written" }, "Written"))),
      el("tbody", {}, rows));
    const empty = feed.entries.length ? null
      : el("p", { class: "muted", id: "empty" }, head ? "No events yet: they appear here as they are written." : "No events on this page.");
    // Offered once the stream is known to have metadata (a stream without any has none to show).
    const metadata = isAll(stream) || stream.startsWith("$$") || filtered ? null
      : el("a", { href: streamRoute(stream, "metadata"), id: "metadata-link", hidden: true }, "metadata");
    const category = !stream.startsWith("$") && stream.indexOf("-") > 0
      ? el("a", { href: `#/category/${enc(stream.slice(0, stream.indexOf("-")))}` }, "category") : null;
    const filter = filtered ? new URLSearchParams(api.split("?")[1] || "") : null;
    const withoutSystem = Boolean(filter && filter.get("exclude-system-events"));
    const toggle = isAll(stream) && (!filtered || withoutSystem)
      ? el("label", { class: "toggle" },
        el("input", {
          type: "checkbox", id: "hide-system", checked: withoutSystem,
          onchange: (event) => {
            localStorage.setItem(HIDE_SYSTEM, event.target.checked ? "true" : "false");
            if (location.hash === "#/streams/%24all") route();
            else location.hash = "#/streams/%24all";
          },
        }), " Hide system events")
      : null;
    const title = !filtered ? stream : withoutSystem ? "$all"
      : `$all: ${filter.get("context") === "eventtype" ? "event type" : "stream"} ${filter.get("type")} ${filter.get("data")}`;
    page(title,
      el("p", { class: "note" },
        withoutSystem ? "Every event in the log but the system's ($-types: metadata, the system projections' links), newest first. "
          : filtered ? "Events of $all that match, newest first (each page looks through up to 10,000 events)."
            : isAll(stream) ? "Every event in the log, newest first. " : "Events newest first. ",
        toggle, metadata, metadata && category ? " · " : null, category),
      pager, table, empty);
    if (metadata) {
      exists(streamApi(stream, "metadata")).then((found) => {
        if (found && mine === generation) metadata.hidden = false;
      });
    }
    status(head && !filtered ? "Live" : "");
    if (head && !filtered) live(stream, feed, mine);
  }

  async function live(stream, feed, mine) {
    stopPolling();
    const next = link(feed, "previous");
    if (!next) return;
    const controller = new AbortController();
    poller = controller;
    while (mine === generation && !controller.signal.aborted) {
      try {
        const newer = await getJson(withEmbed(apiOf(next), "rich"), {
          headers: { "ES-LongPoll": POLL_SECONDS }, signal: controller.signal,
        });
        if (mine !== generation) return;
        if (newer.entries.length) {
          const fresh = new Set(newer.entries.map((e) => e.id + e.positionEventNumber));
          generation += 1; // a re-render of the same route
          await showStream(stream, null, fresh);
          return;
        }
      } catch (error) {
        if (controller.signal.aborted || mine !== generation) return;
        status("Live updates paused: retrying…");
        await new Promise((resolve) => setTimeout(resolve, 3000));
      }
    }
  }

  // ---------------------------------------------------------------- one event

  function pretty(text) {
    if (text === undefined || text === null || text === "") return null;
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }

  async function exists(path) {
    try {
      await getJson(path);
      return true;
    } catch {
      return false;
    }
  }

  async function showEvent(stream, number) {
    const mine = generation;
    let entry;
    try {
      entry = await getJson(`${streamApi(stream, number)}?embed=tryharder`);
    } catch (error) {
      if (mine !== generation) return;
      if (error.status === 404) {
        page(`${number}@${stream}`, el("p", { class: "error", role: "alert" },
          `There is no event ${number} in '${stream}' (or it is a link to an event that is gone).`),
          el("p", {}, el("a", { href: streamRoute(stream) }, `Back to ${stream}`)));
      } else {
        failure(`${number}@${stream}`, error, stream);
      }
      return;
    }
    if (mine !== generation) return;
    const original = parseTitle(entry.title);
    const isLink = entry.positionStreamId !== entry.streamId || entry.positionEventNumber !== entry.eventNumber;
    let correlation = null;
    try {
      const meta = entry.metaData ? JSON.parse(entry.metaData) : null;
      correlation = meta && (meta.$correlationId || meta.correlationId);
    } catch { /* not JSON */ }
    const props = el("dl", { class: "props", id: "event-props" },
      el("dt", {}, "Event id"), el("dd", { id: "event-id" }, entry.eventId),
      el("dt", {}, "Type"), el("dd", {}, entry.eventType),
      el("dt", {}, "Stream"), el("dd", {}, nameLink(streamRoute(entry.streamId), entry.streamId)),
      el("dt", {}, "Number"), el("dd", {}, String(entry.eventNumber)),
      el("dt", {}, "Written"), el("dd", {}, when(entry.updated)),
      el("dt", {}, "Content"), el("dd", {}, entry.isJson ? "JSON" : "not JSON"),
      isLink ? [el("dt", {}, "Read through"), el("dd", { id: "read-through" }, "link ",
        nameLink(streamRoute(entry.positionStreamId), `${entry.positionEventNumber}@${entry.positionStreamId}`),
        " → the original ", nameLink(routeOf(entry.id), entry.title, { id: "original" }))] : null,
      correlation ? [el("dt", {}, "Correlation"), el("dd", {},
        nameLink(`#/correlation/${enc(String(correlation))}`, String(correlation)))] : null);
    const section = (title, id, text) => text === null ? null : [
      el("h2", {}, title), el("pre", { id, tabindex: "0" }, text)];
    const nav = el("nav", { class: "pager", "aria-label": "Events" },
      el("a", { class: "button", href: streamRoute(entry.positionStreamId || stream) }, "↑ Stream"));
    const isMetadata = number === "metadata";
    page(isMetadata ? `Metadata of ${stream}` : `${entry.positionEventNumber ?? original.number}@${entry.positionStreamId || stream}`,
      nav, props,
      section("Data", "event-data", entry.data === undefined ? "(no data)" : pretty(entry.data) ?? "(empty)"),
      section("Metadata", "event-metadata", pretty(entry.metaData)),
      section("Link metadata", "link-metadata", isLink ? pretty(entry.linkMetaData) : null));
    if (isMetadata) return; // the latest metadata event: its neighbours are in $$stream
    // Neighbours, offered only once they are known to exist.
    const here = Number(number);
    const [older, newer] = await Promise.all([
      here > 0 ? exists(streamApi(stream, String(here - 1))) : false,
      exists(streamApi(stream, String(here + 1))),
    ]);
    if (mine !== generation) return;
    if (older) nav.append(el("a", { class: "button", href: streamRoute(stream, String(here - 1)), "data-rel": "next", "aria-keyshortcuts": "]" }, "← Previous event"));
    if (newer) nav.append(el("a", { class: "button", href: streamRoute(stream, String(here + 1)), "data-rel": "previous", "aria-keyshortcuts": "[" }, "Next event →"));
  }

  // ---------------------------------------------------------------- routing

  async function route() {
    generation += 1;
    stopPolling();
    status("");
    const [fragment, query] = location.hash.replace(/^#\/?/, "").split("?");
    const parts = fragment.split("/");
    if (query) parts[parts.length - 1] += "?" + query;
    const decoded = parts.map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
    if (parts[0] === "streams" && decoded[1] === "$all" && parts[2] === "filtered") {
      return showStream("$all", "/" + parts.join("/"), new Set(), true);
    }
    if (parts[0] === "streams" && parts.length >= 2 && parts[1]) {
      const stream = decoded[1];
      if (parts.length === 2) return showStream(stream, null);
      if (parts.length === 3 && parts[2] === "") return showStream(stream, null);
      if (parts.length === 3) return showEvent(stream, parts[2]);
      if (parts.length === 5) return showStream(stream, "/" + parts.join("/"));
      if (parts.length === 4) return showStream(stream, "/" + parts.join("/"));
    }
    if (parts[0] === "search" && parts.length === 2) return showSearch(decoded[1]);
    if (parts[0] === "category" && parts.length === 2) return showCategory(decoded[1]);
    if (parts[0] === "type" && parts.length === 2) return showType(decoded[1]);
    if (parts[0] === "correlation" && parts.length === 2) return showCorrelation(decoded[1]);
    return showHome();
  }

  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const prefix = document.getElementById("search-input").value.trim();
    location.hash = `#/search/${enc(prefix)}`;
  });

  function moveSelection(step) {
    const rows = [...main.querySelectorAll("[data-row]")];
    if (!rows.length) return;
    const current = rows.findIndex((row) => row.classList.contains("selected"));
    const next = Math.max(0, Math.min(rows.length - 1, current + step));
    rows.forEach((row) => row.classList.remove("selected"));
    rows[next].classList.add("selected");
    const target = rows[next].querySelector("a");
    if (target) target.focus();
  }

  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing) {
      if (event.key === "Escape") document.activeElement.blur();
      return;
    }
    const press = (relation) => {
      const target = main.querySelector(`[data-rel="${relation}"][href]`);
      if (target) location.hash = target.getAttribute("href");
    };
    switch (event.key) {
      case "/": event.preventDefault(); document.getElementById("search-input").focus(); break;
      case "h": location.hash = "#/"; break;
      case "a": location.hash = streamRoute("$all"); break;
      case "j": moveSelection(1); break;
      case "k": moveSelection(-1); break;
      case "[": press("previous"); break;
      case "]": press("next"); break;
      default: return;
    }
  });

  // The full name of a cut one, for the keyboard (hover shows the title).
  main.addEventListener("focusin", (event) => {
    const target = event.target;
    if (target.classList && target.classList.contains("name") && target.scrollWidth > target.clientWidth) {
      status(target.title);
    }
  });

  window.addEventListener("hashchange", route);
  route();
})();
