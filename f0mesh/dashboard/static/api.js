// The node's HTTP API from the page: JSON in and out, the session cookie, CSRF on every change.

const CSRF_COOKIE = "f0mesh_csrf";
const CSRF_HEADER = "x-csrf-token";

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }

  /** The error in words, for the page. */
  get words() {
    if (this.status === 0) return this.detail;
    return `${this.detail} (HTTP ${this.status})`;
  }
}

/** The CSRF token the node set next to its HttpOnly session cookie, or "" when not logged in. */
export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return "";
}

export function loggedIn() {
  return csrfToken() !== "";
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  const detail = (body && typeof body.detail === "string" && body.detail) || res.statusText || "request failed";
  return new ApiError(res.status, (body && body.error) || `http_${res.status}`, detail);
}

/** fetch + JSON; throws ApiError with the API's {"error", "detail"} in words. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken();
    if (token) headers[CSRF_HEADER] = token;
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "the node did not answer (is it running?)");
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return null;
  return res.json();
}

/** Exchange the admin token for the session cookie (GET /login?token=, which redirects to /). */
export async function login(token) {
  let res;
  try {
    res = await fetch(`/login?token=${encodeURIComponent(token)}`, {
      credentials: "same-origin",
      cache: "no-store",
      redirect: "follow",
    });
  } catch {
    throw new ApiError(0, "network", "the node did not answer (is it running?)");
  }
  if (!res.ok) throw await errorOf(res);
  if (!loggedIn()) {
    throw new ApiError(0, "cookie", "the node accepted the token, but the browser kept no session cookie (cookies blocked?)");
  }
}

/** End this browser's session on the node (POST /logout), which also clears its cookies. */
export async function logout() {
  await api("/logout", { method: "POST" });
}
