// The projections API a user projection sees, as the real server's JS runtime defines it
// (fromAll, fromStream(s), fromCategory, when, partitionBy, foreachStream, outputState,
// transformBy, filterBy, outputTo, emit, linkTo, options). Loaded once per projection.
var __esdb = (function () {
  var sources = { all: false, streams: [], categories: [], includeLinks: false };
  var handlers = null;
  var partitioner = null;
  var byStream = false;
  var outputState = false;
  var transforms = [];
  var options = {};
  var emitted = [];
  var defined = false;

  function chain() {
    return {
      when: function (h) { handlers = h; defined = true; return chain(); },
      partitionBy: function (f) { partitioner = f; return chain(); },
      foreachStream: function () { byStream = true; return chain(); },
      outputState: function () { outputState = true; return chain(); },
      transformBy: function (f) { transforms.push(function (s) { return f(s); }); outputState = true; return chain(); },
      filterBy: function (f) { transforms.push(function (s) { return f(s) ? s : null; }); outputState = true; return chain(); },
      outputTo: function (name) { options.resultStreamName = name; outputState = true; return chain(); },
      $defines_state_transform: function () { outputState = true; },
    };
  }

  var api = {
    fromAll: function () { sources.all = true; return chain(); },
    fromStream: function (s) { sources.streams.push(s); return chain(); },
    fromStreams: function () {
      var list = arguments.length === 1 && Array.isArray(arguments[0]) ? arguments[0] : Array.prototype.slice.call(arguments);
      for (var i = 0; i < list.length; i++) sources.streams.push(list[i]);
      return chain();
    },
    fromCategory: function (c) { sources.categories.push(c); return chain(); },
    fromCategories: function () {
      var list = arguments.length === 1 && Array.isArray(arguments[0]) ? arguments[0] : Array.prototype.slice.call(arguments);
      for (var i = 0; i < list.length; i++) sources.categories.push(list[i]);
      return chain();
    },
    options: function (o) {
      for (var k in o) options[k] = o[k];
      if (o.$includeLinks) sources.includeLinks = true;
    },
    emit: function (stream, type, body, metadata) {
      emitted.push({ kind: "emit", stream: String(stream), type: String(type),
        data: JSON.stringify(body === undefined ? {} : body),
        metadata: metadata === undefined || metadata === null ? null : JSON.stringify(metadata) });
    },
    linkTo: function (stream, event, metadata) {
      emitted.push({ kind: "link", stream: String(stream), target: event.sequenceNumber + "@" + event.streamId,
        metadata: metadata === undefined || metadata === null ? null : JSON.stringify(metadata) });
    },
    copyTo: function (stream, event, metadata) {
      emitted.push({ kind: "emit", stream: String(stream), type: event.eventType, data: event.bodyRaw,
        metadata: metadata === undefined || metadata === null ? null : JSON.stringify(metadata) });
    },
  };

  function init() {
    if (handlers && typeof handlers.$init === "function") {
      var s = handlers.$init();
      return s === undefined ? {} : s;
    }
    return {};
  }

  function result(state) {
    for (var i = 0; i < transforms.length; i++) {
      if (state === null) return null;
      state = transforms[i](state);
    }
    return state;
  }

  return {
    api: api,
    definition: function () {
      if (!defined) throw new Error("Projection has no handlers (call when())");
      return JSON.stringify({ sources: sources, byStream: byStream, partitioned: partitioner !== null,
        outputState: outputState, options: options,
        handled: Object.keys(handlers) });
    },
    partition: function (eventJson) {
      var event = JSON.parse(eventJson);
      if (partitioner === null) return "";
      var key = partitioner(event);
      return key === undefined || key === null ? null : String(key);
    },
    // state: JSON text or null (not yet initialised). Returns the new state and what it emitted.
    process: function (stateJson, eventJson) {
      emitted = [];
      var event = JSON.parse(eventJson);
      var state = stateJson === null ? init() : JSON.parse(stateJson);
      var handler = handlers[event.eventType];
      if (typeof handler !== "function") handler = handlers.$any;
      if (typeof handler === "function") {
        var next = handler(state, event);
        if (next !== undefined) state = next;
      }
      return JSON.stringify({ state: JSON.stringify(state), result: JSON.stringify(result(state)), emitted: emitted });
    },
    deleted: function (stateJson, eventJson, soft) {
      emitted = [];
      var event = JSON.parse(eventJson);
      var state = stateJson === null ? init() : JSON.parse(stateJson);
      if (typeof handlers.$deleted === "function") {
        var next = handlers.$deleted(state, event, soft);
        if (next !== undefined) state = next;
      }
      return JSON.stringify({ state: JSON.stringify(state), result: JSON.stringify(result(state)), emitted: emitted });
    },
    initial: function () { return JSON.stringify(init()); },
  };
})();
var fromAll = __esdb.api.fromAll, fromStream = __esdb.api.fromStream,
  fromStreams = __esdb.api.fromStreams, fromCategory = __esdb.api.fromCategory,
  fromCategories = __esdb.api.fromCategories, options = __esdb.api.options,
  emit = __esdb.api.emit, linkTo = __esdb.api.linkTo, copyTo = __esdb.api.copyTo;
var log = function () {};
