// Per-room client state, free of DOM code: which chat ids we hold, the last id seen (the resume
// point after a reconnect), who is present and how many messages are unread.

// The server's defaults (MAX_USER_NAME_CHARS, MAX_ROOM_NAME_CHARS, MAX_TEXT_CHARS). A server
// configured tighter still answers with an error, which the page shows.
export const MAX_USER_CHARS = 32;
export const MAX_ROOM_CHARS = 64;
export const MAX_TEXT_CHARS = 4000;

// Unicode "Cc" (control) characters, which is what Rust's char::is_control() rejects.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/u;

/**
 * Validates a user or room name the way the server does: 1–max characters (Unicode scalar values,
 * not UTF-16 code units) and no control characters. Returns an error message or null.
 */
export function nameProblem(name, what = 'Name', max = MAX_USER_CHARS) {
  const chars = [...name].length;
  if (chars === 0) return `${what} must not be empty.`;
  if (chars > max) return `${what} must be at most ${max} characters (it has ${chars}).`;
  if (CONTROL_CHARS.test(name)) return `${what} must not contain control characters.`;
  return null;
}

export class RoomState {
  constructor(name) {
    this.name = name;
    /** chat ids we have displayed; used to drop duplicates */
    this.ids = new Set();
    /** highest chat id seen: the `since` of a resuming join */
    this.lastId = 0;
    /** lowest chat id held, for loading earlier messages */
    this.oldestId = Infinity;
    /** set when a page of earlier messages came back short: nothing older exists */
    this.reachedStart = false;
    this.users = [];
    this.unread = 0;
    /** true once the server confirmed a join (sent presence); a rejoin then resumes with `since` */
    this.confirmed = false;
    /** a join was sent and neither presence nor an error has answered it yet */
    this.pending = false;
  }

  /**
   * Takes chat messages from any source (live, history, gap fill, older page) and returns the ones
   * not seen before, ordered by id. Messages without an id (an old server) are always new.
   */
  accept(messages) {
    const fresh = [];
    for (const m of messages) {
      if (!m || typeof m !== 'object') continue;
      if (typeof m.id === 'number') {
        if (this.ids.has(m.id)) continue;
        this.ids.add(m.id);
        if (m.id > this.lastId) this.lastId = m.id;
        if (m.id < this.oldestId) this.oldestId = m.id;
      }
      fresh.push(m);
    }
    fresh.sort((a, b) => (a.id ?? Infinity) - (b.id ?? Infinity));
    return fresh;
  }

  /** Forgets all messages, for a `history` with `recovered:false` that replaces them. */
  resetMessages() {
    this.ids.clear();
    this.lastId = 0;
    this.oldestId = Infinity;
    this.reachedStart = false;
  }

  /** Whether older messages than the ones held may exist on the server. */
  get hasOlder() {
    return !this.reachedStart && Number.isFinite(this.oldestId) && this.oldestId > 1;
  }

  /** The join frame to send for this room on (re)connect; marks the join as pending. */
  joinFrame() {
    this.pending = true;
    return this.confirmed
      ? { type: 'join', room: this.name, since: this.lastId }
      : { type: 'join', room: this.name };
  }

  setUsers(users) {
    this.users = [...new Set(users)].sort((a, b) => a.localeCompare(b));
  }

  addUser(user) {
    if (!this.users.includes(user)) this.setUsers([...this.users, user]);
  }

  removeUser(user) {
    this.users = this.users.filter((u) => u !== user);
  }
}
