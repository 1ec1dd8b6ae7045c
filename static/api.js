// The REST API. Every failure becomes an Error whose message is fit to show to a person.
//
// In token mode every request carries `Authorization: Bearer <token>` (setAuthToken); a 401
// answer to such a request is reported to the handler given to onUnauthorized, which asks the
// person for a new token.

let authToken = null;
let unauthorized = () => {};

/** The token REST requests carry from now on (null: none, as in open mode). */
export function setAuthToken(token) {
  authToken = token || null;
}

/** `handler(message)` is called when the server refuses the token of a REST request (401). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function requestHeaders(token = authToken) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/** The `error` of a JSON error body, or null. */
async function errorOf(res) {
  try {
    const body = await res.json();
    return body && typeof body.error === 'string' && body.error ? body.error : null;
  } catch {
    return null; // not JSON
  }
}

async function getJson(path) {
  let res;
  const token = authToken;
  try {
    res = await fetch(path, { headers: requestHeaders(token), cache: 'no-store' });
  } catch {
    throw new Error('the server could not be reached');
  }
  if (!res.ok) {
    const detail = (await errorOf(res)) ?? (res.statusText || 'request failed');
    if (res.status === 401 && token) unauthorized(detail);
    const err = new Error(`${detail} (HTTP ${res.status})`);
    err.status = res.status;
    throw err;
  }
  try {
    return await res.json();
  } catch {
    throw new Error('the server sent a malformed response');
  }
}

/** `[{name, user_count}]`, sorted by name. */
export async function listRooms() {
  const body = await getJson('/api/rooms');
  return Array.isArray(body) ? body : [];
}

/** `{room, messages}` with chat objects oldest first, all with `id < before`. */
export async function roomMessages(room, { before, limit } = {}) {
  const params = new URLSearchParams();
  if (before != null) params.set('before', String(before));
  if (limit != null) params.set('limit', String(limit));
  const query = params.toString();
  const body = await getJson(`/api/rooms/${encodeURIComponent(room)}/messages${query ? `?${query}` : ''}`);
  return { messages: Array.isArray(body?.messages) ? body.messages : [] };
}

/** Seconds to wait from a Retry-After header (seconds or an HTTP date) or a JSON body; or null. */
function retryAfterSeconds(res, body) {
  const header = res.headers.get('Retry-After');
  if (header) {
    const secs = Number(header);
    if (Number.isFinite(secs) && secs >= 0) return secs;
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, (date - Date.now()) / 1000);
  }
  const fromBody = Number(body?.retry_after_seconds);
  return Number.isFinite(fromBody) && fromBody >= 0 ? fromBody : null;
}

/**
 * Asks the server whether it would let this client connect — as `user` (open mode) or with
 * `token` (token mode) — exactly as the WebSocket upgrade would decide, without connecting: a
 * browser cannot read why a handshake was refused. Never throws; the outcome is one of
 *
 *   {kind: 'ok', user, mode, rooms, expiresAt}  connect as `user` (the server's normalised name)
 *   {kind: 'name', message}                     the name is refused (400), or no token is wanted
 *   {kind: 'token', message, missing}           no valid token (401); `missing`: none was sent
 *   {kind: 'forbidden', message}                this page's origin or host is refused (403)
 *   {kind: 'wait', message, retryAfter}         over a limit (429) or full (503): retry in seconds
 *   {kind: 'unreachable', message}              no answer (or an unexpected one): retry later
 */
export async function checkSession({ user, token } = {}) {
  const path = token ? '/api/session' : `/api/session?user=${encodeURIComponent(user ?? '')}`;
  let res;
  try {
    res = await fetch(path, { headers: requestHeaders(token ?? null), cache: 'no-store' });
  } catch {
    return { kind: 'unreachable', message: 'the server could not be reached' };
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: judged by the status alone
  }
  const message = typeof body?.error === 'string' && body.error ? body.error : res.statusText || `HTTP ${res.status}`;
  if (res.ok && body && typeof body.user === 'string') {
    return {
      kind: 'ok',
      user: body.user,
      mode: body.mode === 'token' ? 'token' : 'open',
      rooms: Array.isArray(body.rooms) ? body.rooms.filter((r) => typeof r === 'string') : null,
      expiresAt: Number.isFinite(body.expires_at) ? body.expires_at : null,
    };
  }
  switch (res.status) {
    case 400:
      return { kind: 'name', message };
    case 401:
      return { kind: 'token', message, missing: !token };
    case 403:
      return { kind: 'forbidden', message };
    case 404:
      // A server without /api/session (older than the page): connect and see.
      return user != null ? { kind: 'ok', user, mode: 'open', rooms: null, expiresAt: null } : { kind: 'unreachable', message };
    case 429:
    case 503:
      return { kind: 'wait', message, retryAfter: retryAfterSeconds(res, body) ?? 5 };
    default:
      return { kind: 'unreachable', message: `${message} (HTTP ${res.status})` };
  }
}
