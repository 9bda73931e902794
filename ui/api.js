// @ts-check
// The console's API client: the key and tenant kept in sessionStorage, JSON calls that turn every error into its
// `error.message`, and a reader of Server-Sent Events over fetch() (EventSource cannot send the key).

const KEY = "threadline.key";
const TENANT = "threadline.tenant";

/** An API error: its HTTP status and the server's `error.message`. */
export class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @returns {{key: string, tenant: string}} */
export function credentials() {
  return { key: sessionStorage.getItem(KEY) || "", tenant: sessionStorage.getItem(TENANT) || "" };
}

/** @param {string} key @param {string} tenant */
export function signIn(key, tenant) {
  sessionStorage.setItem(KEY, key);
  if (tenant) sessionStorage.setItem(TENANT, tenant);
  else sessionStorage.removeItem(TENANT);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(TENANT);
}

/**
 * The URL of an API path with its query (empty values left out), plus `tenant=` when one is set.
 * @param {string} path
 * @param {Record<string, string | number | undefined>} [query]
 */
export function url(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== "") params.append(name, String(value));
  }
  const { tenant } = credentials();
  if (tenant) params.append("tenant", tenant);
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

/** @returns {Record<string, string>} */
function headers() {
  const { key } = credentials();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/**
 * A fetch() of the API that throws an ApiError with the server's message for any non-2xx answer.
 * @param {string} method @param {string} target
 */
async function call(method, target) {
  let response;
  try {
    response = await fetch(target, { method, headers: headers() });
  } catch (err) {
    throw new ApiError(0, `The server cannot be reached (${String(err)}).`);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    const message = body?.error?.message || `${method} ${target} answered ${response.status}.`;
    throw new ApiError(response.status, message);
  }
  return response;
}

/**
 * GET a JSON document.
 * @param {string} path @param {Record<string, string | number | undefined>} [query]
 * @returns {Promise<any>}
 */
export async function get(path, query) {
  return (await call("GET", url(path, query))).json();
}

/** DELETE a resource. @param {string} path @returns {Promise<any>} */
export async function remove(path) {
  return (await call("DELETE", url(path))).json();
}

/**
 * Every page of a list endpoint, in order.
 * @param {string} path @param {Record<string, string | number | undefined>} query
 * @returns {Promise<any[]>}
 */
export async function all(path, query) {
  const items = [];
  let after;
  for (;;) {
    const page = await get(path, { ...query, limit: 100, after });
    items.push(...page.data);
    if (!page.has_more) return items;
    after = page.last_id;
  }
}

/**
 * Follows a Server-Sent Events stream, calling `onEvent` with each event's name and parsed data, until it ends
 * or `signal` aborts it.
 * @param {string} path
 * @param {(event: string, data: any) => void} onEvent
 * @param {AbortSignal} signal
 */
export async function follow(path, onEvent, signal) {
  const response = await fetch(url(path, { stream: "true" }), { headers: headers(), signal });
  if (!response.ok || !response.body) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, body?.error?.message || `The stream answered ${response.status}.`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length && data.join("\n") !== "[DONE]") onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}
