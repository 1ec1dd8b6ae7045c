// Per-room client state, free of DOM code: which chat ids we hold, the last id seen (the resume
// point after a reconnect), who is present and how many messages are unread.

// The server's default MAX_TEXT_CHARS: a longer text is refused before it is sent, so that it stays
// in the box. A server configured tighter still answers with an error, which the page shows.
// Names have no rules here: the server's (NFKC, no invisible or bidi characters, one script, its
// own length limits) decide, and the page shows its reason (GET /api/session, `invalid_room`).
export const MAX_TEXT_CHARS = 4000;

/**
 * The form the server gives a room name (NFKC, see docs/PROTOCOL.md#names), so that the page
 * keys its rooms by the name the server's frames carry.
 */
export function normalizeName(name) {
  return name.normalize('NFKC');
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
