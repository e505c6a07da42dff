// The client helper: every request the page makes goes through here.
//
// `send(command, url, body, etag)` names the command as the seed's AngularJS decorator did:
// `Content-Type: application/json; domain-model=<command>`, and the ETag last read as
// `If-Match`. A write's `Commit-Position` is kept and presented on every later read, so the
// page reads its own writes (the API waits for the projector to get there). A 401 asks the
// person for an API key (kept in sessionStorage) and tries again.

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
}

let commitPosition = null; // the last write's, presented on reads
let asking = null; // the pending key prompt, shared by concurrent 401s
const listeners = new Set();

export function onExchange(listener) {
  listeners.add(listener);
}

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

// Ask the person for a key (the page supplies the dialog); one prompt at a time.
let prompter = async () => null;
export function setKeyPrompt(fn) {
  prompter = fn;
}

async function askForKey(response) {
  if (!asking) {
    let problem = null;
    try {
      problem = await response.clone().json();
    } catch {
      // not JSON: the status says enough
    }
    asking = prompter(problem && problem.detail).finally(() => {
      asking = null;
    });
  }
  const key = await asking;
  if (!key) throw new ApiError(response, { detail: "An API key is needed." });
  sessionStorage.setItem(KEY, key);
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// One HTTP exchange. Answers {status, headers, etag, body}; throws ApiError for 4xx/5xx.
export async function request(method, url, { body, contentType, etag, accept } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = new Headers({ Accept: accept || "application/json" });
    const key = apiKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    if (body !== undefined) headers.set("Content-Type", contentType || "application/json");
    if (etag) headers.set("If-Match", etag);
    const reading = method === "GET" || method === "HEAD";
    if (reading && commitPosition) headers.set("Commit-Position", commitPosition);
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    report(method, url, headers, response);
    if (response.status === 401 && attempt < 3) {
      await askForKey(response);
      continue;
    }
    if (response.status === 503 && reading && attempt < 3) {
      // the projector is still behind (read-your-writes) or the store is away: wait, retry
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      continue;
    }
    if (!response.ok) throw new ApiError(response, await problemOf(response));
    const position = response.headers.get("Commit-Position");
    if (!reading && position) commitPosition = position;
    const type = response.headers.get("Content-Type") || "";
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      etag: response.headers.get("ETag"),
      body: text && type.includes("json") ? JSON.parse(text) : text,
    };
  }
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

function report(method, url, sent, response) {
  const exchange = {
    method,
    url,
    contentType: sent.get("Content-Type"),
    ifMatch: sent.get("If-Match"),
    commitPosition: sent.get("Commit-Position"),
    status: response.status,
    etag: response.headers.get("ETag"),
    committed: response.headers.get("Commit-Position"),
  };
  for (const listener of listeners) listener(exchange);
}
