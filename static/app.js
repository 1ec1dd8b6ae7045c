// The chatterbox page: wires the connection and per-room state to the DOM.
//
// Safety rule for this file: text that came from a user or the server is only ever put into the
// page with textContent, Node.append(string) (a Text node), setAttribute or dataset, never as
// HTML. Elements are looked up through Maps keyed by room name, never by selectors built from data.
//
// Bidi rule: every user-provided string shown (user and room names, message texts) is isolated —
// a <bdi>, an element with dir="auto", or FSI…PDI inside attribute text — so that a right-to-left
// name or text cannot reorder what is around it.
//
// Who may connect is the server's decision: before connecting the page asks GET /api/session and
// shows its reason (a refused name on the login form, a refused token or origin as an alert, a
// countdown when the server is busy). In token mode the token comes from the URL fragment
// (#token=…, removed from the address bar at once) or the login form, lives in sessionStorage, is
// offered to the WebSocket as the subprotocol auth.<token> and sent as a Bearer token to the REST API.

import { checkSession, listRooms, onUnauthorized, roomMessages, setAuthToken } from './api.js';
import { Connection, backoffDelay } from './connection.js';
import { MAX_TEXT_CHARS, RoomState, normalizeName } from './rooms.js';

const ROOM_POLL_MS = 4000;
const OLDER_PAGE = 50;
const GAP_PAGE = 100;
const NEAR_BOTTOM_PX = 48;
const MAX_ALERTS = 5;
const SESSION_KEY = 'chatterbox.session'; // sessionStorage: {user, mode, rooms, active}
const TOKEN_KEY = 'chatterbox.token'; // sessionStorage: the sign-in token (token mode)
const RESUME_KEY = 'chatterbox.resume'; // sessionStorage: {user, ticket} from the last `welcome`
const NAME_KEY = 'chatterbox.name'; // localStorage: the last name, to prefill the form
const MODE_KEY = 'chatterbox.mode'; // localStorage: 'token' when the server last wanted a token
/** The subprotocol the server selects when the page offers it beside auth.<token>. */
const SUBPROTOCOL = 'chatterbox';

const $ = (id) => document.getElementById(id);

/** Creates an element. `text` sets textContent; other attributes go through setAttribute. */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children); // strings become Text nodes
  return node;
}

const asArray = (v) => (Array.isArray(v) ? v : []);
const asText = (v) => (typeof v === 'string' ? v : String(v ?? ''));

/** A user-provided string as an isolated inline element. */
const bdi = (text, attrs = {}) => h('bdi', { ...attrs, text });
/** A user-provided string isolated inside attribute text (FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE). */
const isolated = (text) => `\u2068${text}\u2069`;

// `where`: 'session' or 'local'. Even reading window.sessionStorage throws where storage is
// disabled, hence inside the try.
const storageOf = (where) => (where === 'local' ? window.localStorage : window.sessionStorage);

function storageGet(where, key) {
  try {
    return storageOf(where).getItem(key);
  } catch {
    return null; // storage disabled
  }
}

function storageSet(where, key, value) {
  try {
    if (value == null) storageOf(where).removeItem(key);
    else storageOf(where).setItem(key, value);
  } catch {
    // storage disabled: a reload asks again
  }
}

// ---------------------------------------------------------------------------------------------
// Small presentation helpers

const AVATAR_HUES = [0, 25, 45, 95, 145, 175, 200, 225, 255, 285, 320];

function hueOf(name) {
  let hash = 0x811c9dc5; // FNV-1a
  for (const ch of name) hash = Math.imul(hash ^ ch.codePointAt(0), 0x01000193) >>> 0;
  return AVATAR_HUES[hash % AVATAR_HUES.length];
}

function avatar(name, el = h('span', { class: 'avatar', 'aria-hidden': 'true' })) {
  el.textContent = ([...name][0] ?? '?').toUpperCase();
  el.style.setProperty('--hue', String(hueOf(name)));
  return el;
}

function formatTime(date) {
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function messageItem(m, own) {
  const user = asText(m.user);
  const li = h('li', { class: own ? 'msg own' : 'msg' });
  if (typeof m.id === 'number') li.dataset.id = String(m.id);
  const when = new Date(m.timestamp);
  const time = Number.isNaN(when.getTime())
    ? h('time')
    : h('time', { datetime: asText(m.timestamp), title: when.toLocaleString(), text: formatTime(when) });
  const meta = h(
    'div',
    { class: 'meta' },
    bdi(user, { class: 'author' }),
    own ? h('span', { class: 'you-tag', text: 'you' }) : '',
    ' ',
    time,
  );
  li.append(avatar(user), h('div', { class: 'bubble' }, meta, h('p', { class: 'text', dir: 'auto', text: asText(m.text) })));
  return li;
}

// ---------------------------------------------------------------------------------------------
// Alerts: every error the user should know about ends up here, dismissable, never swallowed.

/** `message`: a string, or an array of strings and nodes (e.g. a <bdi> around a room name). */
function showAlert(message, kind = 'error') {
  const region = $('alerts');
  const parts = Array.isArray(message) ? message : [message];
  const paragraph = h('p', {}, ...parts);
  message = paragraph.textContent;
  for (const item of region.children) {
    if (item.dataset.message === message) return; // already on screen
  }
  const close = h('button', { type: 'button', class: 'alert-close', 'aria-label': 'Dismiss' }, '×');
  const item = h('div', { class: `alert ${kind}` }, paragraph, close);
  item.dataset.message = message;
  close.addEventListener('click', () => {
    item.remove();
    focusMain();
  });
  region.append(item);
  while (region.children.length > MAX_ALERTS) region.firstElementChild.remove();
}

function focusMain() {
  if (!$('chat').hidden && !$('composer-input').disabled) $('composer-input').focus();
  else if (!$('chat').hidden) $('new-room').focus();
  else loginField().focus();
}

// ---------------------------------------------------------------------------------------------
// One room's DOM: its scrollable message log and its entry in "Your rooms".

class RoomView {
  constructor(name, { onOpen, onLoadOlder }) {
    this.name = name;
    this.stuck = true; // whether the log follows new messages
    this.older = h('button', { type: 'button', class: 'load-older', hidden: true, text: 'Load earlier messages' });
    this.older.addEventListener('click', onLoadOlder);
    this.list = h('ol', { class: 'message-list' });
    this.pane = h(
      'div',
      { class: 'messages', role: 'log', 'aria-label': `Messages in ${name}`, tabindex: '0', hidden: true },
      this.older,
      this.list,
    );
    this.pane.addEventListener('scroll', () => {
      if (this.pane.hidden) return;
      this.stuck = this.#nearBottom();
      if (this.stuck) $('jump').hidden = true;
    });

    this.badge = h('span', { class: 'badge', 'aria-hidden': 'true', hidden: true });
    this.unreadText = h('span', { class: 'visually-hidden' });
    this.button = h(
      'button',
      { type: 'button', class: 'room-link' },
      h('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }),
      bdi(name, { class: 'room-name' }),
      this.unreadText,
      this.badge,
    );
    this.button.addEventListener('click', onOpen);
    this.navItem = h('li', {}, this.button);
  }

  #nearBottom() {
    const p = this.pane;
    return p.scrollHeight - p.scrollTop - p.clientHeight < NEAR_BOTTOM_PX;
  }

  /** Whether new messages should scroll the log (a hidden log remembers its last answer). */
  isStuck() {
    return this.pane.hidden ? this.stuck : this.#nearBottom();
  }

  scrollToBottom() {
    this.pane.scrollTop = this.pane.scrollHeight;
    this.stuck = true;
  }

  /** Inserts a chat item in id order (live messages simply land at the end). */
  insertChat(li) {
    const id = Number(li.dataset.id);
    if (!li.dataset.id) {
      this.list.append(li);
      return;
    }
    let before = null;
    for (let node = this.list.lastElementChild; node; node = node.previousElementSibling) {
      if (!node.dataset.id) continue;
      if (Number(node.dataset.id) < id) break;
      before = node;
    }
    this.list.insertBefore(li, before);
  }

  /** A line of the log: strings and nodes (user names in a <bdi>). */
  line(parts, kind = 'system') {
    this.list.append(h('li', { class: kind }, ...(Array.isArray(parts) ? parts : [parts])));
  }

  clear() {
    this.list.replaceChildren();
  }

  setUnread(count) {
    this.badge.textContent = count > 99 ? '99+' : String(count);
    this.badge.hidden = count === 0;
    this.unreadText.textContent = count ? `, ${count} unread` : '';
  }

  setActive(active) {
    this.pane.hidden = !active;
    if (active) this.button.setAttribute('aria-current', 'true');
    else this.button.removeAttribute('aria-current');
  }

  remove() {
    this.pane.remove();
    this.navItem.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// Application state

const app = {
  user: null,
  /** 'open': the person picks a name; 'token': a signed token names them (the server decides) */
  mode: 'open',
  /** the sign-in token (token mode), also in sessionStorage */
  token: null,
  /** the room patterns the token may join, or null: any */
  grantRooms: null,
  /** @type {Connection|null} */
  conn: null,
  /** @type {Map<string, {state: RoomState, view: RoomView}>} */
  rooms: new Map(),
  active: null,
  directory: [], // last /api/rooms answer
  directoryItems: new Map(), // room name -> <li> in "All rooms"
  pollTimer: null,
  pollFailing: false,
  tickTimer: null,
  /** a session to take up again when the same user signs in next (after a refusal) */
  restore: null,
  /** the login form's countdown before it asks the server again (busy or unreachable) */
  loginTimer: null,
  loginAttempt: 0,
  /** bumped by every sign-in attempt, so that an answer that comes late is ignored */
  loginGeneration: 0,
};

function saveSession() {
  if (!app.user) return;
  storageSet(
    'session',
    SESSION_KEY,
    JSON.stringify({ user: app.user, mode: app.mode, rooms: [...app.rooms.keys()], active: app.active }),
  );
}

function loadSession() {
  try {
    const s = JSON.parse(storageGet('session', SESSION_KEY) ?? 'null');
    if (s && typeof s.user === 'string' && s.user) {
      return {
        user: s.user,
        mode: s.mode === 'token' ? 'token' : 'open',
        rooms: asArray(s.rooms).filter((r) => typeof r === 'string' && r),
        active: typeof s.active === 'string' ? s.active : null,
      };
    }
  } catch {
    // ignore a corrupt entry
  }
  return null;
}

/** The resume ticket of the last `welcome` for `user`, or '' (which asks the server for one). */
function loadTicket(user) {
  try {
    const t = JSON.parse(storageGet('session', RESUME_KEY) ?? 'null');
    return t && t.user === user && typeof t.ticket === 'string' ? t.ticket : '';
  } catch {
    return '';
  }
}

function saveTicket(user, ticket) {
  storageSet('session', RESUME_KEY, user && ticket ? JSON.stringify({ user, ticket }) : null);
}

function setToken(token) {
  app.token = token || null;
  setAuthToken(app.token);
  storageSet('session', TOKEN_KEY, app.token);
}

/**
 * A token in the URL fragment (#token=…), removed from the address bar at once so that it is not
 * copied, bookmarked or shared with the URL (a fragment never reaches a server or a Referer).
 */
function takeTokenFromUrl() {
  const fragment = window.location.hash.replace(/^#/, '');
  if (!fragment) return null;
  const params = new URLSearchParams(fragment);
  if (!params.has('token')) return null;
  const token = params.get('token').trim();
  params.delete('token');
  const rest = params.toString();
  const { pathname, search } = window.location;
  window.history.replaceState(window.history.state, '', `${pathname}${search}${rest ? `#${rest}` : ''}`);
  return token || null;
}

/** The WebSocket URL: the page's own origin (CSP connect-src 'self'), with the resume ticket. */
function wsUrl() {
  const url = new URL('/ws', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const user = app.mode === 'token' ? '' : `user=${encodeURIComponent(app.user)}&`;
  url.search = `?${user}resume=${encodeURIComponent(loadTicket(app.user))}`;
  return url.href;
}

// ---------------------------------------------------------------------------------------------
// The login form: a name (open mode) or a sign-in token (token mode), both checked by the server

function loginMode() {
  return $('login-form').dataset.mode === 'token' ? 'token' : 'open';
}

function loginField() {
  return loginMode() === 'token' ? $('login-token') : $('login-name');
}

/** Shows the form for `mode`, with `error` (or none) on its field. */
function showLoginForm(mode, error = null) {
  $('login-form').dataset.mode = mode;
  $('name-group').hidden = mode === 'token';
  $('token-group').hidden = mode !== 'token';
  $('login-submit').textContent = mode === 'token' ? 'Sign in' : 'Start chatting';
  storageSet('local', MODE_KEY, mode === 'token' ? 'token' : null);
  showFieldError($('login-name'), $('login-error'), mode === 'open' ? error : null);
  showFieldError($('login-token'), $('token-error'), mode === 'token' ? error : null);
}

/** `status` is announced (a live region); `countdown` changes every second, so it is not. */
function setLoginStatus(status = '', countdown = '') {
  if ($('login-status').textContent !== status) $('login-status').textContent = status;
  $('login-countdown').textContent = countdown;
}

function cancelLoginRetry() {
  clearInterval(app.loginTimer);
  app.loginTimer = null;
}

/** Counts down `seconds` on the login form, then calls `again`. */
function loginCountdown(status, seconds, again) {
  cancelLoginRetry();
  const due = Date.now() + seconds * 1000;
  const tick = () => {
    const left = Math.ceil((due - Date.now()) / 1000);
    if (left <= 0) {
      cancelLoginRetry();
      again();
      return;
    }
    setLoginStatus(status, `Trying again in ${left}s…`);
  };
  app.loginTimer = setInterval(tick, 250);
  tick();
}

/** A server's reason as a sentence: a full stop at the end (and a capital, with `capital`). */
const sentence = (text, { capital = false } = {}) => {
  let s = asText(text).trim();
  if (capital) s = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?…]$/.test(s) ? s : `${s}.`;
};

/**
 * Asks the server whether `credentials` ({user} or {token}) would be let in; signs in as the
 * user it names, or shows why not. `restore`: a stored session whose rooms are rejoined when the
 * server names the same user.
 */
async function attemptSignIn(credentials, { restore = null } = {}) {
  cancelLoginRetry();
  const generation = ++app.loginGeneration;
  const viaToken = credentials.token != null;
  $('login-submit').disabled = true;
  setLoginStatus('Checking…');
  const outcome = await checkSession(credentials);
  if (generation !== app.loginGeneration) return; // superseded
  $('login-submit').disabled = false;
  setLoginStatus();
  switch (outcome.kind) {
    case 'ok': {
      app.loginAttempt = 0;
      app.mode = outcome.mode;
      setToken(viaToken && outcome.mode === 'token' ? credentials.token : null);
      app.grantRooms = outcome.rooms;
      const same = restore && restore.user === outcome.user;
      signIn(outcome.user, { rooms: same ? restore.rooms : [], active: same ? restore.active : null, checked: true });
      return;
    }
    case 'name':
      if (viaToken) {
        // An open-mode server: it wants a name, not a token.
        setToken(null);
        showLoginForm('open', 'This server does not use sign-in tokens: pick a name.');
      } else {
        $('login-name').value = credentials.user;
        showLoginForm('open', `The server refused this name: ${sentence(outcome.message)}`);
      }
      break;
    case 'token':
      setToken(null);
      if (outcome.missing) {
        showLoginForm('token');
      } else {
        showLoginForm('token', `The server refused this token: ${sentence(outcome.message)}`);
        showAlert(`Your sign-in token was refused: ${sentence(outcome.message)} Paste a new one to sign in.`);
      }
      break;
    case 'forbidden':
      showAlert(`The server refused the connection: ${sentence(outcome.message)}`);
      break;
    default: {
      // Busy (429/503: when the server says) or unreachable (the backoff): shown, then again.
      const seconds = outcome.kind === 'wait' ? outcome.retryAfter : backoffDelay(app.loginAttempt) / 1000;
      app.loginAttempt += 1;
      const status =
        outcome.kind === 'wait'
          ? `The server is busy: ${sentence(outcome.message)}`
          : `The server cannot be reached: ${sentence(outcome.message)}`;
      loginCountdown(status, seconds, () => attemptSignIn(credentials, { restore }));
      return;
    }
  }
  if (!$('login').hidden) loginField().focus();
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

function signIn(user, { rooms = [], active = null, checked = false } = {}) {
  cancelLoginRetry();
  setLoginStatus();
  app.user = user;
  app.restore = null;
  if (app.mode === 'open') storageSet('local', NAME_KEY, user);
  $('login-token').value = '';
  $('login').hidden = true;
  $('chat').hidden = false;
  $('me').hidden = false;
  renderMe();
  $('sign-out').textContent = app.mode === 'token' ? 'Sign out' : 'Change name';
  document.body.classList.add('signed-in');
  renderGrant();

  const conn = new Connection({
    url: wsUrl,
    // Browsers cannot set headers on a WebSocket, but they can offer subprotocols.
    protocols: () => (app.mode === 'token' && app.token ? [SUBPROTOCOL, `auth.${app.token}`] : undefined),
    check: () => checkSession(app.mode === 'token' ? { token: app.token } : { user: app.user }),
    checked,
  });
  app.conn = conn;
  conn.addEventListener('state', renderConnection);
  conn.addEventListener('open', onOpen);
  conn.addEventListener('frame', (ev) => onFrame(ev.detail));
  conn.addEventListener('checked', (ev) => onChecked(ev.detail));
  conn.addEventListener('refused', (ev) => onRefused(ev.detail));
  conn.addEventListener('problem', (ev) => showAlert(ev.detail.message));

  for (const name of rooms) addRoom(name);
  const first = active && app.rooms.has(active) ? active : rooms[0];
  if (first) openRoom(first, { focus: false });
  renderRoomChrome();
  conn.start();
  app.pollTimer = setInterval(pollDirectory, ROOM_POLL_MS);
  saveSession();
  focusMain();
}

function renderMe() {
  $('me-name').textContent = app.user ?? '';
  if (app.user) avatar(app.user, $('me-avatar'));
}

/** In token mode, the rooms the token may join, next to "Join or create a room". */
function renderGrant() {
  const hint = $('new-room-hint');
  const rooms = app.mode === 'token' ? app.grantRooms : null;
  hint.hidden = !rooms;
  if (!rooms) return;
  const parts = rooms.length ? ['Your token lets you join: '] : ['Your token lets you join no room.'];
  rooms.forEach((pattern, i) => parts.push(...(i ? [', '] : []), bdi(pattern)));
  hint.replaceChildren(...parts);
}

/** A later check (before a reconnect) passed: it names the user and what the token grants. */
function onChecked(outcome) {
  app.grantRooms = outcome.rooms;
  renderGrant();
  if (outcome.user !== app.user) {
    app.user = outcome.user;
    renderMe();
    saveSession();
  }
}

/** The server refused us while signed in (before a reconnect, or close code 4001). */
function onRefused(outcome) {
  switch (outcome.kind) {
    case 'name': {
      if (app.mode === 'token') {
        // The server no longer uses tokens: it wants a name.
        setToken(null);
        returnToLogin('open', 'This server does not use sign-in tokens: pick a name.');
        break;
      }
      const name = app.user;
      returnToLogin('open', `The server refused this name: ${sentence(outcome.message)}`);
      $('login-name').value = name;
      break;
    }
    case 'token':
      setToken(null); // never again: a new one is needed
      if (outcome.missing) {
        returnToLogin('token', null, 'This server now needs a sign-in token.');
      } else {
        const why = outcome.expired ? 'Your sign-in token expired.' : `Your sign-in token was refused: ${sentence(outcome.message)}`;
        returnToLogin('token', `The server refused this token: ${sentence(outcome.message)}`, `${why} Paste a new one to go on.`);
      }
      break;
    default:
      // Forbidden (origin or host): no use retrying by itself. The status offers "Retry now".
      showAlert(`The server refused the connection: ${sentence(outcome.message)}`);
      break;
  }
}

/** Tears down the chat (the connection, the rooms' views) and shows the login form. */
function leaveChat() {
  closeDrawers();
  clearInterval(app.pollTimer);
  app.conn?.stop();
  app.conn = null;
  for (const { view } of app.rooms.values()) view.remove();
  app.rooms.clear();
  app.active = null;
  app.user = null;
  document.body.classList.remove('signed-in');
  $('chat').hidden = true;
  $('me').hidden = true;
  $('login').hidden = false;
  renderRoomChrome();
  renderConnection();
  updateTitle();
}

/** Back to the login form after a refusal; the same user signing in again gets the rooms back. */
function returnToLogin(mode, error, alert = null) {
  const restore = app.user ? { user: app.user, rooms: [...app.rooms.keys()], active: app.active } : null;
  leaveChat();
  app.restore = restore;
  showLoginForm(mode, error);
  if (alert) showAlert(alert);
  loginField().focus();
}

function signOut() {
  const mode = app.mode;
  leaveChat();
  app.restore = null;
  storageSet('session', SESSION_KEY, null);
  saveTicket(null, null);
  setToken(null);
  showLoginForm(mode);
  loginField().focus();
}

// ---------------------------------------------------------------------------------------------
// Rooms: join, open, leave

function addRoom(name) {
  if (app.rooms.has(name)) return app.rooms.get(name);
  const state = new RoomState(name);
  const entry = { state, view: null };
  entry.view = new RoomView(name, {
    onOpen: () => openRoom(name),
    onLoadOlder: () => loadOlder(entry),
  });
  app.rooms.set(name, entry);
  $('panes').append(entry.view.pane);
  $('joined-rooms').append(entry.view.navItem);
  if (app.conn?.state === 'online') app.conn.send(state.joinFrame()); // otherwise onOpen sends it
  renderDirectory();
  return entry;
}

function joinRoom(name) {
  addRoom(name);
  openRoom(name);
  saveSession();
  pollDirectory();
}

function openRoom(name, { focus = true } = {}) {
  const entry = app.rooms.get(name);
  if (!entry) return;
  const previous = app.rooms.get(app.active);
  if (previous && previous !== entry) previous.view.setActive(false);
  app.active = name;
  entry.view.setActive(true);
  if (entry.view.stuck) entry.view.scrollToBottom();
  entry.state.unread = 0;
  entry.view.setUnread(0);
  $('jump').hidden = true;
  renderRoomChrome();
  renderPresence();
  updateTitle();
  closeDrawers();
  saveSession();
  if (focus) $('composer-input').focus();
}

function leaveRoom(name) {
  if (!app.rooms.has(name)) return;
  // When offline there is nothing to tell the server: the reconnect simply will not rejoin it.
  if (app.conn?.state === 'online') app.conn.send({ type: 'leave', room: name });
  dropRoom(name);
  pollDirectory();
  focusMain();
}

// ---------------------------------------------------------------------------------------------
// Server frames

function onOpen() {
  // (Re)join every room; rooms the server already confirmed resume after the last id we hold.
  for (const { state } of app.rooms.values()) app.conn.send(state.joinFrame());
  pollDirectory();
}

function onFrame(frame) {
  const entry = typeof frame.room === 'string' ? app.rooms.get(frame.room) : undefined;
  switch (frame.type) {
    case 'chat':
      if (entry) addMessages(entry, [frame], 'live');
      break;
    case 'history':
      if (entry) onHistory(entry, frame);
      break;
    case 'presence':
      if (entry) {
        entry.state.confirmed = true;
        entry.state.pending = false;
        entry.state.setUsers(asArray(frame.users).map(asText));
        if (frame.room === app.active) renderPresence();
        renderDirectory();
      }
      break;
    case 'join':
    case 'leave':
      if (entry) {
        const user = asText(frame.user);
        if (frame.type === 'join') entry.state.addUser(user);
        else entry.state.removeUser(user);
        const stick = isStuck(entry);
        entry.view.line([bdi(user), frame.type === 'join' ? ' joined' : ' left']);
        if (stick) entry.view.scrollToBottom();
        if (frame.room === app.active) renderPresence();
        renderDirectory();
      }
      break;
    case 'gap':
      if (entry) fillGap(entry, frame);
      break;
    case 'error':
      onServerError(frame, entry);
      break;
    case 'welcome':
      // Sent first when the URL asks for a resume ticket: kept for the next reconnect, which
      // the server then lets in ahead of new arrivals. Nothing to show.
      if (typeof frame.resume === 'string' && frame.resume) saveTicket(app.user, frame.resume);
      break;
    default:
      // Unknown types are future extensions: ignore.
      break;
  }
}

function onHistory(entry, frame) {
  if (frame.recovered === false) {
    entry.state.resetMessages();
    entry.view.clear();
    entry.view.line(
      'Some messages may be missing: only the latest ones could be loaded. “Load earlier messages” fetches more.',
      'notice',
    );
  }
  entry.view.pane.setAttribute('aria-busy', 'true');
  addMessages(entry, asArray(frame.messages), frame.recovered === true ? 'resume' : 'history');
  entry.view.pane.removeAttribute('aria-busy');
}

function onServerError(frame, entry) {
  const message = typeof frame.message === 'string' && frame.message ? frame.message : 'The server reported an error.';
  showAlert(typeof frame.room === 'string' ? ['In ', bdi(frame.room), `: ${message}`] : message);
  if (frame.code === 'not_member') {
    // The server forgot us (e.g. a race with a reconnect): join again, resuming.
    if (entry && !entry.state.pending) app.conn?.send(entry.state.joinFrame());
    return;
  }
  // The server answers requests in order, so an error while a join is pending is that join's
  // answer. `invalid_room` errors carry no room: they answer the oldest pending join.
  if (!entry && (frame.code === 'invalid_room' || frame.code === 'missing_room')) {
    entry = [...app.rooms.values()].find((e) => e.state.pending);
  }
  if (!entry || !entry.state.pending) return;
  entry.state.pending = false;
  // A room the server refused (e.g. too many rooms) must not linger as joined. One it had
  // accepted before a reconnect stays: a later message or reconnect may rejoin it.
  if (!entry.state.confirmed) dropRoom(entry.state.name);
}

/** Forgets a room locally (no leave frame: the server does not have us in it). */
function dropRoom(name) {
  const entry = app.rooms.get(name);
  if (!entry) return;
  entry.view.remove();
  app.rooms.delete(name);
  if (app.active === name) {
    app.active = null;
    const next = app.rooms.keys().next();
    if (!next.done) openRoom(next.value, { focus: false });
  }
  renderRoomChrome();
  renderPresence();
  renderDirectory();
  updateTitle();
  saveSession();
}

function isStuck(entry) {
  return entry.view.isStuck();
}

/**
 * Adds chat messages (de-duplicated by id, inserted in id order).
 * kind: 'live' | 'history' | 'resume' | 'gap' | 'older'
 */
function addMessages(entry, messages, kind) {
  const { state, view } = entry;
  const fresh = state.accept(messages);
  view.older.hidden = !state.hasOlder;
  if (fresh.length === 0) return;

  const stick = isStuck(entry);
  const heightBefore = view.pane.scrollHeight;
  const topBefore = view.pane.scrollTop;
  const items = fresh.map((m) => messageItem(m, m.user === app.user));
  if (kind === 'older') {
    // Older than everything shown: above it all, also above a "may be missing" notice.
    view.list.prepend(...items);
  } else {
    for (const li of items) view.insertChat(li);
  }

  if (kind === 'older') {
    // Keep what the reader was looking at in place.
    view.pane.scrollTop = topBefore + (view.pane.scrollHeight - heightBefore);
  } else if (stick) {
    view.scrollToBottom();
  } else if (app.active === state.name && kind !== 'history') {
    $('jump').hidden = false;
  }

  if ((kind === 'live' || kind === 'resume') && app.active !== state.name) {
    state.unread += fresh.filter((m) => m.user !== app.user).length;
    view.setUnread(state.unread);
    updateTitle();
  }
}

async function fillGap(entry, frame) {
  const from = Number(frame.from);
  const to = Number(frame.to);
  if (!Number.isInteger(from) || !Number.isInteger(to) || to < from) return;
  let before = to + 1;
  try {
    while (before > from && app.rooms.get(entry.state.name) === entry) {
      const { messages } = await roomMessages(entry.state.name, { before, limit: Math.min(GAP_PAGE, before - from) });
      const got = messages.filter((m) => typeof m?.id === 'number' && m.id >= from && m.id < before);
      if (got.length === 0) break;
      addMessages(entry, got, 'gap');
      before = Math.min(...got.map((m) => m.id));
    }
  } catch (err) {
    showAlert([`Could not load ${to - from + 1} missed messages in “`, bdi(entry.state.name), `”: ${err.message}`]);
  }
}

async function loadOlder(entry) {
  const { state, view } = entry;
  if (!state.hasOlder) return;
  view.older.disabled = true;
  try {
    const { messages } = await roomMessages(state.name, { before: state.oldestId, limit: OLDER_PAGE });
    if (messages.length === 0) state.reachedStart = true; // (id 1 being held also ends it)
    addMessages(entry, messages, 'older');
  } catch (err) {
    showAlert(['Could not load earlier messages in “', bdi(state.name), `”: ${err.message}`]);
  } finally {
    view.older.disabled = false;
    view.older.hidden = !state.hasOlder;
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering of the chrome around the messages

const CONNECTION_LABELS = {
  connecting: 'Connecting…',
  online: 'Online',
  reconnecting: 'Reconnecting',
  offline: 'Offline',
  refused: 'Not connected',
};

function renderConnection() {
  const state = app.conn?.state ?? 'offline';
  $('conn').dataset.state = state;
  document.body.dataset.conn = state;
  const label = CONNECTION_LABELS[state];
  if ($('conn-label').textContent !== label) $('conn-label').textContent = label;
  clearInterval(app.tickTimer);
  const reason = app.conn?.reason ?? '';
  const tick = () => {
    const secs = Math.max(0, Math.ceil((app.conn.retryAt - Date.now()) / 1000));
    // A wait the server asked for (429/503) says why; the plain backoff just counts down.
    $('conn-detail').textContent = reason ? `${sentence(reason, { capital: true })} Retrying in ${secs}s` : `in ${secs}s`;
  };
  if (state === 'reconnecting') {
    tick();
    app.tickTimer = setInterval(tick, 250);
  } else {
    $('conn-detail').textContent = state === 'refused' ? reason : '';
  }
  $('conn-retry').hidden = !app.conn || !(state === 'reconnecting' || state === 'offline' || state === 'refused');
  renderComposer();
}

function renderComposer() {
  const input = $('composer-input');
  const hasRoom = app.active !== null;
  const online = app.conn?.state === 'online';
  input.disabled = !hasRoom;
  $('send').disabled = !hasRoom || !online;
  $('composer-label').textContent = hasRoom ? `Message ${app.active}` : 'Message';
  input.placeholder = hasRoom ? `Message #${isolated(app.active)}` : 'Join a room to chat';
  $('composer-note').textContent =
    hasRoom && app.conn && !online ? 'Not connected: messages can be sent again once the connection is back.' : '';
}

function renderRoomChrome() {
  const entry = app.rooms.get(app.active);
  if (entry) $('room-title').replaceChildren('#', bdi(entry.state.name));
  else $('room-title').textContent = 'No room open';
  if (entry) $('room-title').setAttribute('title', isolated(entry.state.name)); // when it is cut short
  else $('room-title').removeAttribute('title');
  $('empty-state').hidden = Boolean(entry);
  $('leave-room').hidden = !entry;
  $('joined-empty').hidden = app.rooms.size > 0;
  renderComposer();
}

function renderPresence() {
  const entry = app.rooms.get(app.active);
  const users = entry ? entry.state.users : [];
  $('room-count').textContent = entry ? `${users.length} ${users.length === 1 ? 'person' : 'people'} here` : '';
  $('presence-heading').textContent = entry ? `In this room (${users.length})` : 'In this room';
  $('people-toggle').textContent = `People (${users.length})`;
  $('presence-list').replaceChildren(
    ...users.map((u) =>
      h(
        'li',
        { class: u === app.user ? 'me' : '' },
        avatar(u),
        bdi(u, { class: 'user-name' }),
        u === app.user ? h('span', { class: 'you-tag', text: 'you' }) : '',
      ),
    ),
  );
}

function updateTitle() {
  let total = 0;
  for (const { state } of app.rooms.values()) total += state.unread;
  document.title = total ? `(${total}) chatterbox` : 'chatterbox';
  $('total-unread').textContent = String(total);
  $('total-unread').hidden = total === 0;
}

async function pollDirectory() {
  if (!app.conn || app.conn.state !== 'online' || document.hidden) return; // the status shows why
  try {
    app.directory = (await listRooms()).filter((r) => r && typeof r.name === 'string');
    app.pollFailing = false;
  } catch (err) {
    if (!app.pollFailing) showAlert(`Could not load the room list: ${err.message}`);
    app.pollFailing = true;
    return;
  }
  renderDirectory();
}

/** "All rooms": updated in place so that keyboard focus survives each poll. */
function renderDirectory() {
  const list = $('all-rooms');
  const rooms = app.directory.map((r) => ({ name: r.name, count: Number(r.user_count) || 0 }));
  const seen = new Set(rooms.map((r) => r.name));
  for (const name of app.rooms.keys()) {
    if (!seen.has(name)) rooms.push({ name, count: null });
  }
  // For rooms we are in, presence is fresher than the last poll.
  for (const room of rooms) {
    const entry = app.rooms.get(room.name);
    if (entry?.state.confirmed && app.conn?.state === 'online') room.count = entry.state.users.length;
  }
  rooms.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const keep = new Set(rooms.map((r) => r.name));
  for (const [name, li] of app.directoryItems) {
    if (!keep.has(name)) {
      li.remove();
      app.directoryItems.delete(name);
    }
  }
  rooms.forEach((room, index) => {
    let li = app.directoryItems.get(room.name);
    if (!li) {
      const button = h(
        'button',
        { type: 'button', class: 'room-link' },
        h('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }),
        bdi(room.name, { class: 'room-name' }),
        h('span', { class: 'joined-tag' }),
        h('span', { class: 'count' }),
      );
      button.addEventListener('click', () => joinRoom(room.name));
      li = h('li', {}, button);
      app.directoryItems.set(room.name, li);
    }
    const joined = app.rooms.has(room.name);
    li.querySelector('.joined-tag').textContent = joined ? 'joined' : '';
    li.querySelector('.count').textContent =
      room.count === null ? '' : `${room.count} ${room.count === 1 ? 'person' : 'people'}`;
    li.classList.toggle('joined', joined);
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] ?? null);
  });
  $('all-empty').hidden = rooms.length > 0;
}

// ---------------------------------------------------------------------------------------------
// Drawers (rooms / people) on narrow screens

function openDrawer(which) {
  const toggle = $(which === 'sidebar' ? 'rooms-toggle' : 'people-toggle');
  const open = document.body.dataset.drawer === which;
  closeDrawers();
  if (open) return;
  document.body.dataset.drawer = which;
  toggle.setAttribute('aria-expanded', 'true');
  $('scrim').hidden = false;
  const target = $(which).querySelector('button, input, [tabindex]');
  (target ?? $(which)).focus();
}

function closeDrawers({ restoreFocus = false } = {}) {
  const was = document.body.dataset.drawer;
  if (!was) return;
  delete document.body.dataset.drawer;
  $('rooms-toggle').setAttribute('aria-expanded', 'false');
  $('people-toggle').setAttribute('aria-expanded', 'false');
  $('scrim').hidden = true;
  if (restoreFocus) $(was === 'sidebar' ? 'rooms-toggle' : 'people-toggle').focus();
}

// ---------------------------------------------------------------------------------------------
// Wiring

function showFieldError(input, errorEl, message) {
  errorEl.textContent = message ?? '';
  errorEl.hidden = !message;
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

function init() {
  // First of all, so that the token leaves the address bar before anything else happens.
  const urlToken = takeTokenFromUrl();
  onUnauthorized((message) => {
    if (app.conn) onRefused({ kind: 'token', message });
  });

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const restore = app.restore ?? loadSession();
    if (loginMode() === 'token') {
      const input = $('login-token');
      const token = input.value.trim(); // a pasted token often brings a space or a newline
      showFieldError(input, $('token-error'), token ? null : 'Paste your sign-in token.');
      if (!token) {
        input.focus();
        return;
      }
      attemptSignIn({ token }, { restore });
    } else {
      // The name as typed (not even trimmed): the server decides, and says why.
      const input = $('login-name');
      const name = input.value;
      showFieldError(input, $('login-error'), name ? null : 'Enter a name.');
      if (!name) {
        input.focus();
        return;
      }
      attemptSignIn({ user: name }, { restore });
    }
  });

  $('new-room-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('new-room');
    // As the server will store it (NFKC), so that its answers find the room; its rules decide
    // the rest (an `invalid_room` error is shown).
    const name = normalizeName(input.value);
    showFieldError(input, $('new-room-error'), name ? null : 'Enter a room name.');
    if (!name) {
      input.focus();
      return;
    }
    input.value = '';
    joinRoom(name);
  });

  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('composer-input');
    const text = input.value.trim();
    if (!text || !app.active) return;
    const chars = [...text].length;
    if (chars > MAX_TEXT_CHARS) {
      $('composer-note').textContent = `Too long: a message can have at most ${MAX_TEXT_CHARS} characters (this one has ${chars}).`;
      return;
    }
    if (!app.conn?.send({ type: 'chat', room: app.active, text })) {
      $('composer-note').textContent = 'Not connected: your message was not sent and is still in the box.';
      return;
    }
    input.value = '';
    renderComposer();
    const entry = app.rooms.get(app.active);
    if (entry) entry.view.stuck = true; // your own message brings you to the bottom
  });

  $('leave-room').addEventListener('click', () => {
    if (app.active) leaveRoom(app.active);
  });
  $('sign-out').addEventListener('click', signOut);
  $('conn-retry').addEventListener('click', () => app.conn?.retryNow());
  $('jump').addEventListener('click', () => {
    app.rooms.get(app.active)?.view.scrollToBottom();
    $('jump').hidden = true;
    $('composer-input').focus();
  });
  $('rooms-toggle').addEventListener('click', () => openDrawer('sidebar'));
  $('people-toggle').addEventListener('click', () => openDrawer('presence'));
  $('scrim').addEventListener('click', () => closeDrawers({ restoreFocus: true }));
  for (const button of document.querySelectorAll('[data-close-drawer]')) {
    button.addEventListener('click', () => closeDrawers({ restoreFocus: true }));
  }
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && document.body.dataset.drawer) closeDrawers({ restoreFocus: true });
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) pollDirectory();
  });

  const session = loadSession();
  if (urlToken) storageSet('session', TOKEN_KEY, urlToken);
  const token = urlToken ?? storageGet('session', TOKEN_KEY);
  const rememberedMode = session?.mode ?? (storageGet('local', MODE_KEY) === 'token' ? 'token' : 'open');
  showLoginForm(token ? 'token' : rememberedMode);
  $('login-name').value = session?.mode === 'open' ? session.user : (storageGet('local', NAME_KEY) ?? '');
  renderConnection();
  loginField().focus();
  if (token) attemptSignIn({ token }, { restore: session });
  else if (session?.mode === 'open') attemptSignIn({ user: session.user }, { restore: session });
  else app.restore = session;
}

init();
