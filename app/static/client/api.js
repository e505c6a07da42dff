// The client helper: every request the page makes goes through here.
//
// `send(command, url, body, etag)` names the command as the seed's AngularJS decorator did:
// `Content-Type: application/json; domain-model=<command>`, and the ETag last read as
// `If-Match`. A write's `Commit-Position` is kept and presented on every later read, so the
// page reads its own writes (the API waits for the projector to get there). A 401 asks the
// person for an API key (kept in sessionStorage) and tries again. Every exchange, in full
// (headers and bodies), goes to the listeners: the page's log shows them and copies them as
// curl.

const KEY = "restful-cqrs.api-key";

// The method each command travels by (the route decides the resource).
export const METHODS = {
  CreateInventoryItemCommand: "POST",
  RenameInventoryItemCommand: "PUT",
  CheckInItemsToInventoryCommand: "POST",
  RemoveItemsFromInventoryCommand: "POST",
  DeactivateInventoryItemCommand: "DELETE",
  CarRepresentation: "PUT", // POST to the collection creates a car
};

export class ApiError extends Error {
  constructor(response, problem) {
    const text = problem && (problem.detail || problem.message || problem.title);
    super(text || `${response.status} ${response.statusText}`);
    this.status = response.status;
    this.problem = problem || null;
    this.response = response;
  }

  // Field errors of a 400, as "field: message" lines.
  get fieldErrors() {
    const errors = (this.problem && this.problem.errors) || [];
    return errors.map((e) => `${e.field}: ${e.message}`);
  }

  // The stable error code and the API's page about it (problem+json's additionalInformation).
  get errorCode() {
    return (this.problem && this.problem.errorCode) || null;
  }

  get errorPage() {
    return errorPage(this.problem);
  }
}

export function errorPage(problem) {
  if (!problem || !problem.errorCode) return null;
  return problem.additionalInformation || `/v1/errors/${problem.errorCode}`;
}

let commitPosition = null; // the last write's, presented on reads
let asking = null; // the pending key prompt, shared by concurrent 401s
let sequence = 0;
const listeners = new Set();

export function onExchange(listener) {
  listeners.add(listener);
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
  scopes = null;
}

// Ask the person for a key (the page supplies the dialog); one prompt at a time.
let prompter = async () => null;
export function setKeyPrompt(fn) {
  prompter = fn;
}

async function askForKey(response, problem) {
  if (!asking) {
    asking = prompter(problem && problem.detail).finally(() => {
      asking = null;
    });
  }
  const key = await asking;
  if (!key) throw new ApiError(response, { detail: "An API key is needed." });
  if (key !== apiKey()) scopes = null;
  sessionStorage.setItem(KEY, key);
}

function parse(text, type) {
  if (!text || !type.includes("json")) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// One HTTP exchange. Answers {status, headers, etag, body}; throws ApiError for 4xx/5xx.
// `note` says in the log why the page made it (when the URL alone does not).
export async function request(method, url, { body, contentType, etag, accept, note } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = new Headers({ Accept: accept || "application/json" });
    const key = apiKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    if (body !== undefined) headers.set("Content-Type", contentType || "application/json");
    if (etag) headers.set("If-Match", etag);
    const reading = method === "GET" || method === "HEAD";
    if (reading && commitPosition) headers.set("Commit-Position", commitPosition);
    const sent = body === undefined ? undefined : JSON.stringify(body);
    const response = await fetch(url, {
      method,
      headers,
      body: sent,
      cache: "no-store",
      credentials: "omit",
    });
    const type = response.headers.get("Content-Type") || "";
    const text = await response.text();
    const parsed = parse(text, type);
    report({ method, url, headers, body: sent, response, text, parsed, note });
    const problem = !response.ok && parsed && typeof parsed === "object" ? parsed : null;
    if (response.status === 401 && attempt < 3) {
      await askForKey(response, problem);
      continue;
    }
    if (response.status === 503 && reading && attempt < 3) {
      // the projector is still behind (read-your-writes) or the store is away: wait, retry
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      continue;
    }
    if (response.status === 403 && !reading && problem && problem.errorCode === 1021) {
      scopes = { key: apiKey(), write: false, why: problem.detail };
    }
    if (!response.ok) throw new ApiError(response, problem);
    const position = response.headers.get("Commit-Position");
    if (!reading && position) commitPosition = position;
    return {
      status: response.status,
      headers: response.headers,
      etag: tagOf(response, parsed),
      body: parsed,
    };
  }
}

// The ETag a response carries: its ETag header, else (a command's 202 that leaves the header
// out, so no cache mistakes it for the resource's) the tag its body names.
function tagOf(response, body) {
  const header = response.headers.get("ETag");
  if (header) return header;
  if (body && typeof body === "object" && typeof body.etag === "string") {
    return body.etag.startsWith('"') || body.etag.startsWith("W/") ? body.etag : `"${body.etag}"`;
  }
  return null;
}

export function get(url) {
  return request("GET", url);
}

// A command, named by its domain-model, conditional on the ETag last read.
export function send(command, url, body, etag, method = METHODS[command]) {
  return request(method, url, {
    body,
    etag,
    contentType: `application/json; domain-model=${command}`,
  });
}

// DELETE of a car: the one write with no body (so no domain-model), still conditional.
export function retire(url, etag) {
  return request("DELETE", url, { etag });
}

export function lastCommitPosition() {
  return commitPosition;
}

// ------------------------------------------------------------------ what this key may do

// The API has no "who am I": a key's scopes show in what it is refused. So the page asks
// once per key with a write that cannot succeed: a POST naming a domain-model no route
// accepts. A key without the write scope is refused first (403, errorCode 1021); any other
// answer (415 with write scope, or with no keys configured) means writes are allowed. Nothing
// is ever appended. A later 403 on a real write corrects the answer too.
let scopes = null; // {key, write, why}
export const PROBE_MODEL = "WhatMayThisKeyDo";

let probing = null; // the probe in flight, shared by the views that ask at once

export async function mayWrite() {
  if (scopes && scopes.key === apiKey()) return scopes.write;
  if (!probing) probing = probe().finally(() => (probing = null));
  return probing;
}

async function probe() {
  try {
    await request("POST", "/v1/inventory-items", {
      body: {},
      contentType: `application/json; domain-model=${PROBE_MODEL}`,
      note: "what may this key do? a write no route accepts: 403 means read-only",
    });
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      scopes = { key: apiKey(), write: false, why: error.message };
      return false;
    }
    if (!(error instanceof ApiError)) throw error;
  }
  scopes = { key: apiKey(), write: true, why: null };
  return true;
}

export function readOnlyReason() {
  return scopes && !scopes.write ? scopes.why : null;
}

// ------------------------------------------------------------------ the log

function report({ method, url, headers, body, response, text, parsed, note }) {
  sequence += 1;
  const exchange = {
    id: sequence,
    note: note || null,
    method,
    url: new URL(url, location.href).href,
    requestHeaders: [...headers.entries()],
    requestBody: body === undefined ? null : body,
    status: response.status,
    statusText: response.statusText,
    responseHeaders: [...response.headers.entries()],
    responseBody: text,
    problem: !response.ok && parsed && typeof parsed === "object" ? parsed : null,
  };
  for (const listener of listeners) listener(exchange);
}

// The exchange as a curl command a person can paste into a shell: the key stays out of it
// (`$API_KEY`), and so do the headers the browser adds on its own.
export function asCurl(exchange) {
  const quote = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;
  const first = ["curl", exchange.method === "HEAD" ? "-I" : "-i"];
  if (!["GET", "HEAD"].includes(exchange.method)) first.push("-X", exchange.method);
  first.push(quote(exchange.url));
  const lines = [first.join(" ")];
  for (const [name, value] of exchange.requestHeaders) {
    if (name === "authorization") lines.push('-H "Authorization: Bearer $API_KEY"');
    else lines.push(`-H ${quote(`${headerName(name)}: ${value}`)}`);
  }
  if (exchange.requestBody !== null) lines.push(`--data-raw ${quote(exchange.requestBody)}`);
  return lines.join(" \\\n  ");
}

// Header names as people write them (fetch gives them in lower case).
export function headerName(name) {
  const special = { etag: "ETag", "www-authenticate": "WWW-Authenticate", "x-request-id": "X-Request-Id" };
  return special[name] || name.replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());
}
