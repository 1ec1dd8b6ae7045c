// The WebSocket to the server: connection state, reconnecting with jittered exponential backoff,
// and JSON framing. What to send after (re)connecting (joins that resume each room) is up to the
// listener of the "open" event.
//
// A browser cannot read why a WebSocket handshake was refused, so before the first attempt, and
// before every attempt that follows one that never opened, the connection asks `check()` (the
// server's GET /api/session) whether it would be let in: a refusal stops it (no endless silent
// retry), "wait" retries when the server says, "unreachable" goes on with the backoff.
//
// Events (all CustomEvent):
//   state   detail: { state: 'connecting'|'online'|'reconnecting'|'offline'|'refused', retryAt,
//           attempt, reason }  (reason: why the wait, e.g. "the server is full; retry later")
//   open    the socket is open (first connect or reconnect); detail: { reconnect: boolean }
//   frame   detail: a parsed server frame
//   checked detail: the check's outcome, when it let the connection go ahead ({kind: 'ok', ...})
//   refused detail: the check's outcome when it refused ({kind: 'name'|'token'|'forbidden',
//           message}), or {kind: 'token', message, expired: true} for close code 4001; the
//           connection does not retry by itself (state 'refused'): retryNow() or stop()
//   problem detail: { message } for things the user should see (e.g. a malformed frame)

/** Close code of a connection whose token expired (and was not refreshed in time). */
export const TOKEN_EXPIRED_CLOSE = 4001;

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
  #protocols;
  #check;
  #ws = null;
  #attempt = 0;
  #retryTimer = null;
  #stableTimer = null;
  #state = 'offline';
  #retryAt = 0;
  #reason = '';
  #running = false;
  #everOpened = false;
  /** Whether the next attempt asks `check()` first. */
  #needsCheck = true;
  /** Bumped by every attempt and by stop(): a check that comes back late is ignored. */
  #generation = 0;
  #onOnline = () => this.retryNow();
  #onOffline = () => {
    // An open socket may survive a short outage; a waiting retry is pointless until 'online'.
    if (!this.#running || this.#state !== 'reconnecting') return;
    clearTimeout(this.#retryTimer);
    this.#setState('offline');
  };

  /**
   * @param {object} options
   * @param {string|(() => string)} options.url absolute ws:// or wss:// URL, or a function giving
   *   it for each attempt (e.g. with the latest resume ticket)
   * @param {() => (string[]|undefined)} [options.protocols] subprotocols to offer, per attempt
   * @param {() => Promise<object>} [options.check] asks the server whether it would admit us
   * @param {boolean} [options.checked] the caller has just checked: the first attempt skips it
   * @param {object} [options.backoff] see backoffDelay
   */
  constructor({ url, protocols, check, checked = false, backoff = {} }) {
    super();
    this.#url = typeof url === 'function' ? url : () => url;
    this.#protocols = protocols ?? (() => undefined);
    this.#check = check ?? null;
    this.#needsCheck = !checked;
    this.backoff = backoff;
  }

  get state() {
    return this.#state;
  }

  /** When the next attempt is due (ms since epoch), while the state is "reconnecting". */
  get retryAt() {
    return this.#retryAt;
  }

  /** Why the connection waits or was refused, as the server said it (or ''). */
  get reason() {
    return this.#reason;
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
    this.#generation += 1;
    window.removeEventListener('online', this.#onOnline);
    window.removeEventListener('offline', this.#onOffline);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#stableTimer);
    const ws = this.#ws;
    this.#ws = null;
    if (ws) ws.close(1000, 'bye');
    this.#reason = '';
    this.#setState('offline');
  }

  /** Skips the rest of the backoff wait (or tries again after a refusal). */
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
      new CustomEvent('state', {
        detail: { state, retryAt: this.#retryAt, attempt: this.#attempt, reason: this.#reason },
      }),
    );
  }

  async #connect() {
    const generation = ++this.#generation;
    this.#reason = '';
    this.#setState('connecting');
    if (this.#needsCheck && this.#check) {
      let outcome;
      try {
        outcome = await this.#check();
      } catch (err) {
        outcome = { kind: 'unreachable', message: err?.message ?? String(err) };
      }
      if (!this.#running || generation !== this.#generation) return; // stopped or superseded
      switch (outcome?.kind) {
        case 'ok':
          this.dispatchEvent(new CustomEvent('checked', { detail: outcome }));
          if (!this.#running || generation !== this.#generation) return;
          break;
        case 'wait':
          this.#scheduleRetry(Math.max(0, Number(outcome.retryAfter) || 0) * 1000, outcome.message);
          return;
        case 'unreachable':
          this.#scheduleRetry();
          return;
        default:
          this.#refuse(outcome ?? { kind: 'forbidden', message: 'the server refused the connection' });
          return;
      }
    }
    this.#open();
  }

  #open() {
    let ws;
    try {
      const protocols = this.#protocols();
      ws = protocols ? new WebSocket(this.#url(), protocols) : new WebSocket(this.#url());
    } catch (err) {
      this.dispatchEvent(new CustomEvent('problem', { detail: { message: `Cannot connect: ${err.message}` } }));
      this.#needsCheck = true;
      this.#scheduleRetry();
      return;
    }
    this.#ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      if (ws !== this.#ws) return;
      opened = true;
      this.#needsCheck = false;
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
    ws.addEventListener('close', (ev) => {
      if (ws !== this.#ws) return; // replaced or stopped on purpose
      this.#ws = null;
      clearTimeout(this.#stableTimer);
      if (ev.code === TOKEN_EXPIRED_CLOSE) {
        // Reconnecting with the same token would only be refused: a new one is needed.
        this.#refuse({ kind: 'token', message: ev.reason || 'token expired', expired: true });
        return;
      }
      // Refused before the upgrade (the browser does not say why): ask before the next attempt.
      if (!opened) this.#needsCheck = true;
      this.#scheduleRetry();
    });
    // 'error' is always followed by 'close', which does the work.
  }

  #refuse(outcome) {
    clearTimeout(this.#retryTimer);
    this.#needsCheck = true;
    this.#reason = outcome.message ?? '';
    this.#setState('refused');
    this.dispatchEvent(new CustomEvent('refused', { detail: outcome }));
  }

  /** Retries after the backoff, or after `delay` ms (the server's Retry-After) with `reason`. */
  #scheduleRetry(delay = null, reason = '') {
    if (!this.#running) return;
    if (navigator.onLine === false) {
      // Wait for the browser's 'online' event rather than burning attempts.
      this.#setState('offline');
      return;
    }
    const wait = delay ?? backoffDelay(this.#attempt, this.backoff);
    this.#attempt += 1;
    this.#retryAt = Date.now() + wait;
    this.#reason = reason;
    this.#retryTimer = setTimeout(() => this.#connect(), wait);
    this.#setState('reconnecting');
  }
}
