// The REST API. Every failure becomes an Error whose message is fit to show to a person.

async function getJson(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch {
    throw new Error('the server could not be reached');
  }
  if (!res.ok) {
    let detail = res.statusText || 'request failed';
    try {
      const body = await res.json();
      if (body && typeof body.error === 'string') detail = body.error;
    } catch {
      // not JSON: keep the status text
    }
    throw new Error(`${detail} (HTTP ${res.status})`);
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
