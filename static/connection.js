// The WebSocket to the server: connection state, reconnecting with jittered exponential backoff,
// and JSON framing. What to send after (re)connecting (joins that resume each room) is up to the
// listener of the "open" event.
//
// Events (all CustomEvent):
//   state  detail: { state: 'connecting'|'online'|'reconnecting'|'offline', retryAt, attempt }
//   open   the socket is open (first connect or reconnect); detail: { reconnect: boolean }
//   frame  detail: a parsed server frame
//   problem detail: { message } for things the user should see (e.g. a malformed frame)

/**
 * Delay before reconnect attempt number `attempt` (0-based): exponential growth capped at
 * `max`, with "equal jitter" (between half and all of the ceiling) so that many clients dropped
 * by one server restart do not all come back in the same instant.
 */
export function backoffDelay(attempt, { base = 1000, max = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A connection counts as stable (and the backoff starts again from the bottom) after this long. */
const STABLE_AFTER_MS = 5000;

export class Connection extends EventTarget {
  #url;
  #ws = null;
  #attempt = 0;
  #retryTimer = null;
  #stableTimer = null;
  #state = 'offline';
  #retryAt = 0;
  #running = false;
  #everOpened = false;
  #onOnline = () => this.retryNow();
  #onOffline = () => {
    // An open socket may survive a short outage; a waiting retry is pointless until 'online'.
    if (!this.#running || this.#state !== 'reconnecting') return;
    clearTimeout(this.#retryTimer);
    this.#setState('offline');
  };

  /** @param {string} url absolute ws:// or wss:// URL */
  constructor(url, backoff = {}) {
    super();
    this.#url = url;
    this.backoff = backoff;
  }

  get state() {
    return this.#state;
  }

  /** When the next attempt is due (ms since epoch), while the state is "reconnecting". */
  get retryAt() {
    return this.#retryAt;
  }

  start() {
    if (this.#running) return;
    this.#running = true;
    window.addEventListener('online', this.#onOnline);
    window.addEventListener('offline', this.#onOffline);
    this.#connect();
  }

  /** Closes for good (e.g. the user signs out). */
  stop() {
    this.#running = false;
    window.removeEventListener('online', this.#onOnline);
    window.removeEventListener('offline', this.#onOffline);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#stableTimer);
    const ws = this.#ws;
    this.#ws = null;
    if (ws) ws.close(1000, 'bye');
    this.#setState('offline');
  }

  /** Skips the rest of the backoff wait. */
  retryNow() {
    if (!this.#running || this.#state === 'online' || this.#state === 'connecting') return;
    clearTimeout(this.#retryTimer);
    this.#connect();
  }

  /** Sends a frame; returns false (and sends nothing) unless the socket is open. */
  send(frame) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  #setState(state) {
    this.#state = state;
    this.dispatchEvent(
      new CustomEvent('state', { detail: { state, retryAt: this.#retryAt, attempt: this.#attempt } }),
    );
  }

  #connect() {
    this.#setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.#url);
    } catch (err) {
      this.dispatchEvent(new CustomEvent('problem', { detail: { message: `Cannot connect: ${err.message}` } }));
      this.#scheduleRetry();
      return;
    }
    this.#ws = ws;
    ws.addEventListener('open', () => {
      if (ws !== this.#ws) return;
      const reconnect = this.#everOpened;
      this.#everOpened = true;
      this.#stableTimer = setTimeout(() => {
        this.#attempt = 0;
      }, STABLE_AFTER_MS);
      this.#setState('online');
      this.dispatchEvent(new CustomEvent('open', { detail: { reconnect } }));
    });
    ws.addEventListener('message', (ev) => {
      if (ws !== this.#ws) return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        this.dispatchEvent(
          new CustomEvent('problem', { detail: { message: 'Received a malformed message from the server.' } }),
        );
        return;
      }
      if (frame && typeof frame === 'object' && typeof frame.type === 'string') {
        this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
      }
    });
    ws.addEventListener('close', () => {
      if (ws !== this.#ws) return; // replaced or stopped on purpose
      this.#ws = null;
      clearTimeout(this.#stableTimer);
      this.#scheduleRetry();
    });
    // 'error' is always followed by 'close', which does the work.
  }

  #scheduleRetry() {
    if (!this.#running) return;
    if (navigator.onLine === false) {
      // Wait for the browser's 'online' event rather than burning attempts.
      this.#setState('offline');
      return;
    }
    const delay = backoffDelay(this.#attempt, this.backoff);
    this.#attempt += 1;
    this.#retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#setState('reconnecting');
  }
}
