// Shared by e2e.mjs and screenshot.mjs: start the real server, launch Chromium, drive the page.
//
// Environment:
//   CHATTERBOX_BIN  the server binary (cargo sets it for tests/it/browser.rs)
//   CHROMIUM_BIN    the Chromium executable (Debian's /usr/bin/chromium)

import { execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** How long to wait for anything the page should show. */
export const UI_TIMEOUT = 15_000;

function requireEnv(name, hint) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${hint}`);
  return value;
}

export async function makeTempDir() {
  return mkdtemp(path.join(tmpdir(), 'chatterbox-browser-'));
}

export async function removeDir(dir) {
  if (dir) await rm(dir, { recursive: true, force: true });
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** The port of a "listening on http://ADDR:PORT ..." log line (the URL's last `:PORT`), or null. */
export function portFromLogLine(line) {
  const url = /listening on (\S+)/.exec(line.replace(ANSI, ''));
  if (!url) return null;
  const ports = [...url[1].matchAll(/:(\d{1,5})(?!\d)/g)];
  return ports.length ? Number(ports[ports.length - 1][1]) : null;
}

/**
 * Starts the server and resolves once it logged its port (under a timeout: never a sleep).
 * Returns { port, baseUrl, log(), stop() }.
 */
export async function startServer({ dbPath, port = 0, env = {}, timeoutMs = 30_000 }) {
  const bin = requireEnv('CHATTERBOX_BIN', 'point it at the chatterbox server binary (cargo build --bin chatterbox)');
  // The "listening on" line is logged at info level by the `chatterbox` target: keep it visible
  // whatever RUST_LOG the caller has.
  const inherited = process.env.RUST_LOG;
  const rustLog = !inherited ? 'info' : inherited.includes('chatterbox') ? inherited : `${inherited},chatterbox=info`;
  // A single embedded-SQLite node, whatever the caller's environment says: CI exports
  // DATABASE_URL and REDIS_URL for the cluster tests, and they would override DB_PATH.
  const { DATABASE_URL: _db, REDIS_URL: _redis, ...inheritedEnv } = process.env;
  const child = spawn(bin, [], {
    env: { ...inheritedEnv, RUST_LOG: rustLog, ...env, PORT: String(port), DB_PATH: dbPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const listening = new Promise((resolve, reject) => {
    const pending = { stdout: '', stderr: '' };
    const timer = setTimeout(() => {
      reject(new Error(`the server did not log "listening on" within ${timeoutMs} ms. Its output:\n${log}`));
    }, timeoutMs);
    const onData = (stream) => (chunk) => {
      const text = chunk.toString('utf8');
      log += text;
      pending[stream] += text;
      let nl;
      while ((nl = pending[stream].indexOf('\n')) >= 0) {
        const line = pending[stream].slice(0, nl);
        pending[stream] = pending[stream].slice(nl + 1);
        const found = portFromLogLine(line);
        if (found) {
          clearTimeout(timer);
          resolve(found);
        }
      }
    };
    child.stdout.on('data', onData('stdout'));
    child.stderr.on('data', onData('stderr'));
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${err.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (code ${code}, signal ${signal}) before listening. Its output:\n${log}`));
    });
  });

  const actualPort = await listening;
  return {
    port: actualPort,
    baseUrl: `http://127.0.0.1:${actualPort}`,
    log: () => log,
    exited,
    /** SIGTERM, then wait for the exit (SIGKILL after a timeout, and say so). */
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      let timer;
      const timedOut = new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), timeoutMs);
      });
      const result = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (result === null) {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`the server did not exit within ${timeoutMs} ms of SIGTERM. Its output:\n${log}`);
      }
      return result;
    },
  };
}

/**
 * A token minted by the server binary (`chatterbox token --user … [--rooms …] [--ttl …]`) with
 * `secret` as AUTH_SECRET.
 */
export async function mintToken(secret, user, { rooms, ttl } = {}) {
  const bin = requireEnv('CHATTERBOX_BIN', 'point it at the chatterbox server binary');
  const args = ['token', '--user', user];
  if (rooms) args.push('--rooms', rooms);
  if (ttl) args.push('--ttl', ttl);
  return new Promise((resolve, reject) => {
    execFile(bin, args, { env: { ...process.env, AUTH_SECRET: secret } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`chatterbox token failed: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/**
 * An HS256 JWT made here, for claims the CLI cannot mint (an `exp` in the past): the server
 * checks it exactly as one of its own.
 */
export function craftToken(secret, claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${signed}.${createHmac('sha256', secret).update(signed).digest('base64url')}`;
}

export async function launchBrowser() {
  const executablePath = requireEnv('CHROMIUM_BIN', 'install Chromium (apt-get install chromium) and set CHROMIUM_BIN=/usr/bin/chromium');
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A fresh browser context (its own storage, like another person's browser) with one page that
 * records dialogs and uncaught page errors, so tests can assert that there were none, and:
 *   page.cspViolations  Content-Security-Policy violations ("directive blocked-uri"): the page
 *                       must keep to the server's policy and its own (connect-src 'self')
 *   page.sockets        every WebSocket the page opened: {url, received: [parsed frames]}
 *   page.sessionChecks  the URLs of its GET /api/session requests
 * `path` is where it starts (e.g. '/#token=…').
 */
export async function openPage(
  browser,
  baseUrl,
  { viewport = { width: 1280, height: 800 }, colorScheme = 'light', setup, path: start = '/' } = {},
) {
  const context = await browser.newContext({ viewport, colorScheme, baseURL: baseUrl });
  const cspViolations = [];
  await context.exposeFunction('__chatterboxCspViolation', (what) => cspViolations.push(what));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (ev) => {
      // eslint-disable-next-line no-underscore-dangle
      window.__chatterboxCspViolation(`${ev.effectiveDirective} ${ev.blockedURI}`);
    });
  });
  if (setup) await setup(context);
  const page = await context.newPage();
  page.cspViolations = cspViolations;
  page.sockets = [];
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), received: [] };
    page.sockets.push(socket);
    ws.on('framereceived', ({ payload }) => {
      try {
        socket.received.push(JSON.parse(String(payload)));
      } catch {
        // not JSON: the page reports it
      }
    });
  });
  page.sessionChecks = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/session') page.sessionChecks.push(request.url());
  });
  page.dialogs = [];
  page.pageErrors = [];
  page.on('dialog', (dialog) => {
    page.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (err) => page.pageErrors.push(String(err?.stack ?? err)));
  // Console errors include Content-Security-Policy violations and failed requests.
  page.consoleErrors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') page.consoleErrors.push(message.text());
  });
  await page.goto(start);
  return page;
}

/** Signs in with `name` and waits until the connection is online. */
export async function signIn(page, name) {
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Your name').press('Enter');
  await waitForConnection(page, 'online');
}

/** Signs in with a token through the login form's token field and waits until online. */
export async function signInWithToken(page, token) {
  await page.getByLabel('Sign-in token').fill(token);
  await page.getByLabel('Sign-in token').press('Enter');
  await waitForConnection(page, 'online');
}

export async function waitForConnection(page, state, timeout = UI_TIMEOUT) {
  await page.locator(`#conn[data-state="${state}"]`).waitFor({ timeout });
}

/** Joins (or creates) a room through the "Join or create a room" form and waits for presence. */
export async function joinRoom(page, room, { me } = {}) {
  // On a narrow screen the form is in the rooms drawer. (Asked of the toggle, not of the form:
  // a drawer that is closing stays visible for its transition.)
  const toggle = page.getByRole('button', { name: 'Rooms' });
  if ((await toggle.isVisible()) && (await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  await page.getByLabel('Join or create a room').fill(room);
  await page.getByLabel('Join or create a room').press('Enter');
  await page.locator('#room-title', { hasText: `#${room}` }).waitFor({ timeout: UI_TIMEOUT });
  // (attached, not visible: on narrow screens the people list is in a closed drawer)
  if (me) await presenceItem(page, me).waitFor({ state: 'attached', timeout: UI_TIMEOUT });
}

/** Types into the message box and presses Enter. */
export async function send(page, text) {
  const box = page.locator('#composer-input');
  await box.fill(text);
  await box.press('Enter');
  await page.waitForFunction(() => document.getElementById('composer-input').value === '', null, {
    timeout: UI_TIMEOUT,
  });
}

/** The visible message log (the open room's). */
export function activeLog(page) {
  return page.locator('.messages:not([hidden])');
}

export function messageItem(page, text) {
  return activeLog(page).locator('li.msg').filter({ has: page.locator('.text', { hasText: text }) });
}

export async function waitForMessage(page, text, timeout = UI_TIMEOUT) {
  await messageItem(page, text).first().waitFor({ timeout });
}

const exactly = (text) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);

export function presenceItem(page, user) {
  return page.locator('#presence-list li').filter({ has: page.locator('.user-name', { hasText: exactly(user) }) });
}

/** Polls a condition of the test process (not of the page) until it holds. */
export async function waitUntil(what, condition, timeout = UI_TIMEOUT) {
  const deadline = Date.now() + timeout;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** [{id, user, text}] of the open room's chat messages, in page order. */
export async function shownMessages(page) {
  return activeLog(page)
    .locator('li.msg')
    .evaluateAll((items) =>
      items.map((li) => ({
        id: li.dataset.id === undefined ? null : Number(li.dataset.id),
        user: li.querySelector('.author')?.textContent ?? '',
        text: li.querySelector('.text')?.textContent ?? '',
      })),
    );
}

export async function screenshotAll(pages, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  const safe = name.replace(/[^a-z0-9_-]+/gi, '-').slice(0, 80);
  const written = [];
  for (const [i, page] of pages.entries()) {
    if (!page || page.isClosed()) continue;
    const file = path.join(ARTIFACTS, `${safe}-${i}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true });
      written.push(file);
    } catch {
      // the page may be gone; keep going with the others
    }
  }
  return written;
}

/** Accessibility problems axe-core finds on the page as it is now: [{id, impact, help, targets}]. */
export async function axeViolations(page) {
  // Evaluated through the DevTools protocol: the page's Content-Security-Policy stays in force.
  if (!(await page.evaluate(() => 'axe' in window))) {
    await page.evaluate(await readFile(path.join(HERE, 'node_modules/axe-core/axe.min.js'), 'utf8'));
  }
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
  });
}
