// End-to-end tests of the browser client (static/) against the real server, in headless Chromium.
//
//   CHATTERBOX_BIN=target/debug/chatterbox CHROMIUM_BIN=/usr/bin/chromium node --test tests/browser/e2e.mjs
//
// Every wait is for something observable (a log line, an element, a state attribute) under a
// timeout; nothing sleeps to synchronise. A failing test leaves screenshots in artifacts/.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  UI_TIMEOUT,
  activeLog,
  axeViolations,
  craftToken,
  joinRoom,
  launchBrowser,
  makeTempDir,
  messageItem,
  mintToken,
  openPage,
  presenceItem,
  removeDir,
  screenshotAll,
  send,
  shownMessages,
  signIn,
  signInWithToken,
  startServer,
  waitForConnection,
  waitForMessage,
  waitUntil,
} from './harness.mjs';

// Small limits so that the tests can reach them: a resume of more than RESUME_MAX_MESSAGES is
// answered with `recovered:false` and the latest MAX_HISTORY messages; a longer chat than
// MAX_TEXT_CHARS is refused with an error.
const SERVER_ENV = { RESUME_MAX_MESSAGES: '5', MAX_TEXT_CHARS: '200', MAX_HISTORY: '4' };
/** Reconnecting goes through the jittered backoff, so allow for a few rounds of it. */
const RECONNECT_TIMEOUT = 45_000;

let dir;
let dbPath;
let server;
let browser;
/** Set while the server is stopped by a test, so that a failing test does not leave it down. */
let startAgainAfterFailure = null;

/** Two signed-in pages, alice's and bob's, both in `room`. */
async function aliceAndBobIn(open, room) {
  const alice = await open();
  await signIn(alice, 'alice');
  await joinRoom(alice, room, { me: 'alice' });
  const bob = await open();
  await signIn(bob, 'bob');
  await joinRoom(bob, room, { me: 'bob' });
  return [alice, bob];
}

/**
 * Restarts the server while `away`'s browser is offline (it saw the server stop first, so the page
 * knows it is disconnected), and waits until `present` (signed in as `presentName`) is back
 * online and in its room again.
 */
async function restartWhileAway(away, present, presentName) {
  const startAgain = await stopServer();
  await waitForConnection(away, 'reconnecting');
  await away.context().setOffline(true);
  await waitForConnection(away, 'offline');
  await startAgain();
  await waitForConnection(present, 'online', RECONNECT_TIMEOUT);
  await presenceItem(present, presentName).waitFor({ timeout: UI_TIMEOUT });
}

/** SIGTERM and wait for the exit; returns a function that starts it again on the same port. */
async function stopServer() {
  const port = server.port;
  const start = async () => {
    startAgainAfterFailure = null;
    server = await startServer({ dbPath, port, env: SERVER_ENV });
    assert.equal(server.port, port, 'the restarted server should listen on the same port');
  };
  startAgainAfterFailure = start;
  const exit = await server.stop();
  assert.equal(exit.code, 0, `the server should exit cleanly on SIGTERM, got ${JSON.stringify(exit)}`);
  return start;
}

/**
 * A test with a helper to open pages (each in its own browser context, like different people).
 * After the body it asserts that no page opened a dialog, threw or broke the Content-Security-
 * Policy (the harness adds the strict one, connect-src 'self'), and unless the test provokes
 * failed requests (`{ consoleErrors: 'allowed' }`), that nothing was logged as an error. On
 * failure it saves screenshots. `target()` is the server the pages open (the shared one unless
 * a suite runs its own).
 */
function scenario(name, body, { consoleErrors = 'forbidden', target = () => server } = {}) {
  test(name, async (t) => {
    const pages = [];
    const open = async (options) => {
      const page = await openPage(browser, target().baseUrl, options);
      pages.push(page);
      return page;
    };
    try {
      await body({ open, t });
      for (const page of pages) {
        assert.deepEqual(page.dialogs, [], 'no dialog may ever open');
        assert.deepEqual(page.pageErrors, [], 'the page must not throw');
        assert.deepEqual(page.cspViolations, [], 'nothing the Content-Security-Policy blocks');
        if (consoleErrors === 'forbidden') assert.deepEqual(page.consoleErrors, [], 'nothing logged as an error');
      }
    } catch (err) {
      const shots = await screenshotAll(pages, name);
      t.diagnostic(`screenshots: ${shots.join(', ') || 'none'}`);
      t.diagnostic(`server log (tail):\n${target().log().slice(-3000)}`);
      for (const [i, page] of pages.entries()) {
        if (page.dialogs.length) t.diagnostic(`page ${i} dialogs: ${page.dialogs.join(' | ')}`);
        if (page.pageErrors.length) t.diagnostic(`page ${i} errors: ${page.pageErrors.join(' | ')}`);
      }
      throw err;
    } finally {
      for (const page of pages) await page.context().close().catch(() => {});
      if (startAgainAfterFailure) await startAgainAfterFailure();
    }
  });
}

/** A JSON refusal as the server sends it (with Retry-After when `retryAfter` is given). */
function refusal(status, error, { retryAfter } = {}) {
  const body = { error, reason: status === 403 ? 'origin' : 'server_full' };
  const headers = {};
  if (retryAfter != null) {
    body.retry_after_seconds = retryAfter;
    headers['Retry-After'] = String(retryAfter);
  }
  return { status, headers, contentType: 'application/json', body: JSON.stringify(body) };
}

/** The horizontal middle of the character at UTF-16 offset `index` of the element's text. */
async function charX(locator, index) {
  return locator.evaluate((el, i) => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let offset = i;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (offset < node.length) {
        const range = document.createRange();
        range.setStart(node, offset);
        range.setEnd(node, offset + 1);
        const rect = range.getBoundingClientRect();
        return rect.left + rect.width / 2;
      }
      offset -= node.length;
    }
    throw new Error(`no character ${i} in ${JSON.stringify(el.textContent)}`);
  }, index);
}

function assertIdsStrictlyIncrease(messages, who) {
  const ids = messages.map((m) => m.id);
  assert.ok(ids.every((id) => Number.isInteger(id)), `${who}: every message carries its id: ${ids}`);
  for (let i = 1; i < ids.length; i += 1) {
    assert.ok(ids[i] > ids[i - 1], `${who}: ids must strictly increase (no duplicates, in order): ${ids}`);
  }
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

describe('chatterbox in a browser', () => {
  before(async () => {
    dir = await makeTempDir();
    dbPath = path.join(dir, 'chat.db');
    server = await startServer({ dbPath, env: SERVER_ENV });
  });

  after(async () => {
    await server?.stop();
    await removeDir(dir);
  });

  scenario('the server decides about a name: a refused one is shown with its reason and nothing connects', async ({ open }) => {
    const page = await open();
    const name = page.getByLabel('Your name');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'login-name');
    // Names the page used to let through, each refused by the server's rules (docs/PROTOCOL.md#names).
    const refused = [
      ['ali\u200bce', 'must not contain invisible or formatting characters (U+200B)'], // a zero-width space
      ['\u0430lice', 'mixes Cyrillic (U+0430) and Latin (U+006C) letters'], // a Cyrillic а
      [' bob', 'must not start or end with a space'], // not trimmed: the server says why
      ['x'.repeat(33), 'is longer than 32 characters'],
    ];
    for (const [i, [bad, reason]] of refused.entries()) {
      await name.fill(bad);
      await name.press('Enter');
      await page.locator('#login-error', { hasText: `The server refused this name: user name ${reason}` }).waitFor({ timeout: UI_TIMEOUT });
      assert.equal(await name.getAttribute('aria-invalid'), 'true');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'login-name', 'focus stays on the name');
      assert.equal(await name.inputValue(), bad, 'the name stays as typed, to be fixed');
      assert.equal(page.sessionChecks.length, i + 1, 'one check per submit');
    }
    assert.equal(page.sockets.length, 0, 'no WebSocket was opened for a refused name');
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'offline');
    assert.equal(await page.locator('#login-countdown').textContent(), '', 'no retry is pending');

    await signIn(page, 'é'.repeat(32)); // 32 characters, 64 bytes: allowed
    assert.equal(await page.locator('#login-error').isHidden(), true);
    // No room yet: focus goes to "Join or create a room".
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'new-room');
    await joinRoom(page, 'focus-room', { me: 'é'.repeat(32) });
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'composer-input');

    // The page goes by the name the server normalised (NFKC): fullwidth letters are plain ones.
    await page.getByRole('button', { name: 'Change name' }).click();
    await signIn(page, '\uff46\uff55\uff4c\uff4c'); // ｆｕｌｌ
    assert.equal(await page.locator('#me-name').textContent(), 'full');
    await joinRoom(page, 'focus-room', { me: 'full' });
    await send(page, 'mine');
    assert.equal(await messageItem(page, 'mine').getAttribute('class'), 'msg own');
  }, { consoleErrors: 'allowed' }); // the refusals are failed requests

  scenario('a stored name the server now refuses is shown once, never retried in silence', async ({ open }) => {
    const page = await open();
    // As after a reload when the server's rules got tighter than the page's were.
    await page.evaluate(() =>
      sessionStorage.setItem(
        'chatterbox.session',
        JSON.stringify({ user: 'old\u200bname', mode: 'open', rooms: ['lobby'], active: 'lobby' }),
      ),
    );
    await page.reload();
    await page.locator('#login-error', { hasText: 'invisible or formatting characters' }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await page.locator('#login').isVisible(), true);
    assert.equal(await page.getByLabel('Your name').inputValue(), 'old\u200bname');
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'offline');
    assert.equal(await page.locator('#login-countdown').textContent(), '', 'no retry is pending');
    assert.equal(page.sessionChecks.length, 1);
    assert.equal(page.sockets.length, 0);

    // Another name is another person: the stored rooms are not taken over.
    await signIn(page, 'oldname');
    assert.equal(await page.locator('#joined-empty').isVisible(), true);
    assert.equal(page.sockets.length, 1);
    assert.equal(page.sessionChecks.length, 2, 'one check per attempt, no loop');
  }, { consoleErrors: 'allowed' });

  scenario('two people chat in a room and see each other, presence and unread counts', async ({ open }) => {
    const alice = await open();
    await signIn(alice, 'alice');
    await joinRoom(alice, 'lobby', { me: 'alice' });

    const bob = await open();
    await signIn(bob, 'bob');
    // Bob finds the room in "All rooms", which polling keeps fresh, and joins it from there.
    const listed = bob.locator('#all-rooms').getByRole('button', { name: /lobby/ });
    await listed.waitFor({ timeout: UI_TIMEOUT });
    await listed.click();
    await presenceItem(bob, 'alice').waitFor({ timeout: UI_TIMEOUT });
    await presenceItem(bob, 'bob').waitFor({ timeout: UI_TIMEOUT });
    await presenceItem(alice, 'bob').waitFor({ timeout: UI_TIMEOUT });
    await activeLog(alice).locator('li.system', { hasText: 'bob joined' }).waitFor({ timeout: UI_TIMEOUT });
    await alice.locator('#room-count', { hasText: '2 people here' }).waitFor({ timeout: UI_TIMEOUT });

    await send(alice, 'hello bob');
    await waitForMessage(bob, 'hello bob');
    await waitForMessage(alice, 'hello bob');
    await send(bob, 'hi alice');
    await waitForMessage(alice, 'hi alice');
    await waitForMessage(bob, 'hi alice');

    // Own messages are marked as such; each shows its author and a local time.
    assert.equal(await messageItem(alice, 'hello bob').getAttribute('class'), 'msg own');
    assert.equal(await messageItem(bob, 'hello bob').getAttribute('class'), 'msg');
    assert.equal(await messageItem(bob, 'hello bob').locator('.author').textContent(), 'alice');
    const datetime = await messageItem(bob, 'hello bob').locator('time').getAttribute('datetime');
    assert.match(datetime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(await messageItem(bob, 'hello bob').locator('time').textContent(), /\d/);

    for (const [who, page] of [['alice', alice], ['bob', bob]]) {
      const shown = await shownMessages(page);
      assert.deepEqual(shown.map((m) => m.text), ['hello bob', 'hi alice'], who);
      assertIdsStrictlyIncrease(shown, who);
    }

    // Alice opens a second room; what bob says in the first one is counted as unread.
    await joinRoom(alice, 'random', { me: 'alice' });
    await send(bob, 'are you there?');
    const lobby = alice.locator('#joined-rooms').getByRole('button', { name: /lobby/ });
    await lobby.locator('.badge', { hasText: /^1$/ }).waitFor({ timeout: UI_TIMEOUT });
    assert.match(await lobby.textContent(), /1 unread/);
    assert.equal(await alice.title(), '(1) chatterbox');
    await lobby.click();
    await waitForMessage(alice, 'are you there?');
    await lobby.locator('.badge').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
    assert.equal(await alice.title(), 'chatterbox');

    // Bob leaves: alice sees it in the log and in the presence list.
    await bob.getByRole('button', { name: 'Leave room' }).click();
    await activeLog(alice).locator('li.system', { hasText: 'bob left' }).waitFor({ timeout: UI_TIMEOUT });
    await presenceItem(alice, 'bob').waitFor({ state: 'detached', timeout: UI_TIMEOUT });
  });

  scenario('history is shown after a reload and to people who join later', async ({ open }) => {
    const alice = await open();
    await signIn(alice, 'alice');
    await joinRoom(alice, 'history-room', { me: 'alice' });
    await send(alice, 'first');
    await send(alice, 'second');
    await waitForMessage(alice, 'second');

    await alice.reload();
    await waitForConnection(alice, 'online');
    // The tab remembers who it is and its rooms; the join brings the history back.
    await waitForMessage(alice, 'second');
    let shown = await shownMessages(alice);
    assert.deepEqual(shown.map((m) => m.text), ['first', 'second']);
    assertIdsStrictlyIncrease(shown, 'alice after reload');

    const carol = await open();
    await signIn(carol, 'carol');
    await joinRoom(carol, 'history-room', { me: 'carol' });
    await waitForMessage(carol, 'second');
    shown = await shownMessages(carol);
    assert.deepEqual(shown.map((m) => [m.user, m.text]), [['alice', 'first'], ['alice', 'second']]);
  });

  scenario('user-supplied text is shown as text, never run as HTML or script', async ({ open }) => {
    const evilRoom = "x');alert(1);//";
    const evilText = '<img src=x onerror=alert(1)>';
    const evilUser = '<svg onload=alert(1)>';

    const mallory = await open();
    await signIn(mallory, evilUser);
    await joinRoom(mallory, evilRoom, { me: evilUser });
    await send(mallory, evilText);
    await waitForMessage(mallory, evilText);

    const bob = await open();
    await signIn(bob, 'bob');
    const listed = bob.locator('#all-rooms').getByText(evilRoom, { exact: true });
    await listed.waitFor({ timeout: UI_TIMEOUT });
    await listed.click();
    await bob.getByText(evilText, { exact: true }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await bob.locator('.messages .author').getByText(evilUser, { exact: true }).waitFor({ timeout: UI_TIMEOUT });
    await presenceItem(bob, evilUser).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await bob.locator('#room-title').textContent(), `#${evilRoom}`);

    await bob.reload(); // and again through the history path
    await bob.getByText(evilText, { exact: true }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });

    for (const page of [mallory, bob]) {
      assert.equal(await page.locator('#chat img, #chat svg, #alerts img').count(), 0, 'no element was created from text');
      assert.deepEqual(page.dialogs, [], 'no dialog may open');
    }
  });

  scenario('errors from the server and from HTTP are shown and can be dismissed', async ({ open }) => {
    const alice = await open();
    await signIn(alice, 'alice');
    await joinRoom(alice, 'errors', { me: 'alice' });

    // MAX_TEXT_CHARS is 200 on this server: it answers with an error frame.
    await send(alice, 'y'.repeat(250));
    const alert = alice.locator('#alerts .alert', { hasText: 'longer than 200 characters' });
    await alert.waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await alice.locator('#alerts').getAttribute('role'), 'alert');
    await alert.getByRole('button', { name: 'Dismiss' }).click();
    await alert.waitFor({ state: 'detached', timeout: UI_TIMEOUT });
    assert.equal(await alice.evaluate(() => document.activeElement?.id), 'composer-input');

    // The room list request fails: that is shown too.
    await alice.route('**/api/rooms', (route) =>
      route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"database is down"}' }),
    );
    await alice
      .locator('#alerts .alert', { hasText: 'Could not load the room list: database is down (HTTP 503)' })
      .waitFor({ timeout: UI_TIMEOUT });
    await alice.unroute('**/api/rooms');
  }, { consoleErrors: 'allowed' });

  scenario('a gap frame is filled from the REST API in order; chat ids are shown once', async ({ open }) => {
    // Alice's socket goes through the test, which can drop chat frames and report a gap instead,
    // as the server does for a reader that falls behind.
    let dropping = false;
    const dropped = [];
    let toPage = null;
    const alice = await open({
      setup: (context) =>
        context.routeWebSocket(/\/ws\?/, (ws) => {
          const upstream = ws.connectToServer();
          toPage = ws;
          ws.onMessage((message) => upstream.send(message));
          upstream.onMessage((message) => {
            const frame = JSON.parse(message);
            if (dropping && frame.type === 'chat') {
              dropped.push(frame.id);
              return;
            }
            ws.send(message);
            // Delivered twice (as after a resume that overlaps what arrived live): shown once.
            if (frame.type === 'chat' && frame.text === 'g5') ws.send(message);
          });
        }),
    });
    await signIn(alice, 'alice');
    await joinRoom(alice, 'gappy', { me: 'alice' });
    const bob = await open();
    await signIn(bob, 'bob');
    await joinRoom(bob, 'gappy', { me: 'bob' });

    await send(bob, 'g1');
    await waitForMessage(alice, 'g1');
    dropping = true;
    for (const text of ['g2', 'g3', 'g4']) await send(bob, text);
    await waitUntil('three dropped chat frames', () => dropped.length === 3);
    dropping = false;
    toPage.send(JSON.stringify({ type: 'gap', room: 'gappy', missed: 3, from: dropped[0], to: dropped[2] }));
    await send(bob, 'g5');
    await waitForMessage(alice, 'g5');
    await waitForMessage(alice, 'g3');

    const shown = await shownMessages(alice);
    assert.deepEqual(shown.map((m) => m.text), ['g1', 'g2', 'g3', 'g4', 'g5']);
    assertIdsStrictlyIncrease(shown, 'alice');
  });

  scenario('after a server restart the page reconnects, rejoins and keeps chatting without duplicates', async ({ open }) => {
    const [alice, bob] = await aliceAndBobIn(open, 'restart-room');
    await send(alice, 'before restart 1');
    await send(bob, 'before restart 2');
    await waitForMessage(alice, 'before restart 2');
    await waitForMessage(bob, 'before restart 2');

    const startAgain = await stopServer();
    for (const page of [alice, bob]) {
      await waitForConnection(page, 'reconnecting');
      assert.equal(await page.locator('#conn-label').textContent(), 'Reconnecting');
      await page.locator('#conn-detail', { hasText: /^in \d+s$/ }).waitFor({ timeout: UI_TIMEOUT });
      assert.equal(await page.locator('#send').isDisabled(), true, 'nothing can be sent while offline');
    }
    await startAgain();
    for (const page of [alice, bob]) await waitForConnection(page, 'online', RECONNECT_TIMEOUT);
    await presenceItem(alice, 'bob').waitFor({ timeout: UI_TIMEOUT });
    await presenceItem(bob, 'alice').waitFor({ timeout: UI_TIMEOUT });

    await send(bob, 'after restart');
    await waitForMessage(alice, 'after restart');
    await send(alice, 'still here');
    await waitForMessage(bob, 'still here');
    await waitForMessage(alice, 'still here');
    for (const [who, page] of [['alice', alice], ['bob', bob]]) {
      const shown = await shownMessages(page);
      assert.deepEqual(
        shown.map((m) => m.text),
        ['before restart 1', 'before restart 2', 'after restart', 'still here'],
        `${who} sees every message exactly once`,
      );
      assertIdsStrictlyIncrease(shown, who);
      assert.equal(await activeLog(page).locator('li.notice').count(), 0, `${who}: nothing was missing`);
    }
  }, { consoleErrors: 'allowed' });

  scenario('a page that was away resumes from its last message: missed ones once, no duplicates', async ({ open }) => {
    const [alice, bob] = await aliceAndBobIn(open, 'resume-room');
    await send(bob, 'r1');
    await waitForMessage(alice, 'r1');

    // The server stops; alice's browser then goes offline, so she cannot come back when the
    // server does. (Going offline first would hide the close from the page: a half-open socket.)
    await restartWhileAway(alice, bob, 'bob');
    await send(bob, 'r2');
    await send(bob, 'r3');
    await waitForMessage(bob, 'r3');

    await alice.context().setOffline(false);
    await waitForConnection(alice, 'online', RECONNECT_TIMEOUT);
    await waitForMessage(alice, 'r3');
    const shown = await shownMessages(alice);
    assert.deepEqual(shown.map((m) => m.text), ['r1', 'r2', 'r3']);
    assert.deepEqual(shown.map((m) => m.id), [1, 2, 3]);
    assert.equal(await activeLog(alice).locator('li.notice').count(), 0);

    // Away for longer than the server keeps for a resume (RESUME_MAX_MESSAGES=5): the page says
    // that messages may be missing and shows the latest ones instead.
    await restartWhileAway(alice, bob, 'bob');
    for (let i = 4; i <= 10; i += 1) await send(bob, `r${i}`);
    await waitForMessage(bob, 'r10');
    await alice.context().setOffline(false);
    await waitForConnection(alice, 'online', RECONNECT_TIMEOUT);
    await activeLog(alice).locator('li.notice', { hasText: 'Some messages may be missing' }).waitFor({ timeout: UI_TIMEOUT });
    await waitForMessage(alice, 'r10');
    let after = await shownMessages(alice);
    assert.deepEqual(after.map((m) => m.id), [7, 8, 9, 10], 'replaced by the latest MAX_HISTORY messages');

    // The rest can be loaded on demand, and lands above the notice.
    await alice.getByRole('button', { name: 'Load earlier messages' }).click();
    await waitForMessage(alice, 'r6');
    after = await shownMessages(alice);
    assert.deepEqual(after.map((m) => m.text), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9', 'r10']);
    assertIdsStrictlyIncrease(after, 'alice after loading earlier messages');
    await alice.getByRole('button', { name: 'Load earlier messages' }).waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
    const order = await activeLog(alice)
      .locator('li')
      .evaluateAll((items) => items.map((li) => li.dataset.id ?? li.className));
    assert.ok(order.indexOf('notice') === order.indexOf('7') - 1, `the notice marks the gap: ${order}`);
  }, { consoleErrors: 'allowed' });

  scenario('the log follows new messages unless the reader scrolled up', async ({ open }) => {
    const reader = await open({ viewport: { width: 1280, height: 480 } });
    await signIn(reader, 'reader');
    await joinRoom(reader, 'scrolly', { me: 'reader' });
    const writer = await open();
    await signIn(writer, 'writer');
    await joinRoom(writer, 'scrolly', { me: 'writer' });
    const log = activeLog(reader);
    const distanceFromBottom = () => log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);

    for (let i = 1; i <= 12; i += 1) await send(writer, `line ${i}`);
    await waitForMessage(reader, 'line 12');
    assert.ok(await log.evaluate((el) => el.scrollHeight > el.clientHeight * 1.5), 'the log overflows');
    assert.ok((await distanceFromBottom()) < 2, 'at the bottom, the log follows');

    await log.evaluate((el) => {
      el.scrollTop = 0;
    });
    await send(writer, 'line 13');
    await waitForMessage(reader, 'line 13');
    assert.equal(await log.evaluate((el) => el.scrollTop), 0, 'scrolled up: the log stays where the reader is');
    const jump = reader.getByRole('button', { name: /New messages/ });
    await jump.click();
    await reader.waitForFunction(() => {
      const el = document.querySelector('.messages:not([hidden])');
      return el.scrollHeight - el.scrollTop - el.clientHeight < 2;
    });
    await jump.waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
  });

  scenario('axe-core finds no accessibility problems, wide or narrow, light or dark', async ({ open }) => {
    const layouts = [
      { viewport: { width: 1280, height: 800 }, colorScheme: 'light' },
      { viewport: { width: 1280, height: 800 }, colorScheme: 'dark' },
      { viewport: { width: 860, height: 700 }, colorScheme: 'light' },
      { viewport: { width: 390, height: 780 }, colorScheme: 'light' },
    ];
    for (const [i, layout] of layouts.entries()) {
      const page = await open(layout);
      const where = `${layout.viewport.width}px ${layout.colorScheme}`;
      assert.deepEqual(await axeViolations(page), [], `sign-in page, ${where}`);
      const me = `a11y-${i}`;
      await signIn(page, me);
      await joinRoom(page, 'a11y', { me });
      await joinRoom(page, `a11y-${i}`, { me });
      await send(page, `hello from ${me}`);
      await send(page, 'z'.repeat(201)); // refused by the server: an alert shows
      await page.locator('#alerts .alert').waitFor({ timeout: UI_TIMEOUT });
      assert.deepEqual(await axeViolations(page), [], `chat page, ${where}`);
    }
  });

  scenario('works on a narrow screen with the room and people drawers', async ({ open }) => {
    const page = await open({ viewport: { width: 390, height: 780 } });
    await signIn(page, 'mobile');
    const roomsButton = page.getByRole('button', { name: 'Rooms' });
    await roomsButton.click();
    assert.equal(await roomsButton.getAttribute('aria-expanded'), 'true');
    await joinRoom(page, 'pocket', { me: 'mobile' }); // joining closes the drawer
    assert.equal(await roomsButton.getAttribute('aria-expanded'), 'false');
    await send(page, 'typed on a phone');
    await waitForMessage(page, 'typed on a phone');
    await page.getByRole('button', { name: /People/ }).click();
    await presenceItem(page, 'mobile').waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await page.keyboard.press('Escape');
    await page.locator('#presence').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'people-toggle', 'focus returns to the toggle');
    await roomsButton.click();
    await page.locator('#sidebar').getByRole('button', { name: 'Close' }).click();
    await page.locator('#sidebar').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
    assert.equal(await roomsButton.getAttribute('aria-expanded'), 'false');
  });

  scenario('right-to-left names, rooms and texts are isolated: they cannot reorder what is around them', async ({ open }) => {
    // Both end in a neutral character, which takes the direction of whatever is next to it.
    const rtlUser = 'שרה!';
    const rtlRoom = 'חדר 2';
    const bob = await open();
    await signIn(bob, 'bob');
    await joinRoom(bob, rtlRoom, { me: 'bob' });
    const sara = await open();
    await signIn(sara, rtlUser);
    await joinRoom(sara, rtlRoom, { me: rtlUser });
    await send(sara, 'שלום!');
    await send(sara, 'hello (left to right)');
    await waitForMessage(bob, 'hello (left to right)');
    await presenceItem(bob, rtlUser).waitFor({ timeout: UI_TIMEOUT });

    // Isolated, "שרה!" reads right to left on its own: its "!" ends up at its left. Not isolated,
    // the "!" would join the left-to-right " joined" after it and show at the name's right.
    const joined = activeLog(bob).locator('li.system', { hasText: 'joined' });
    assert.equal(await joined.textContent(), `${rtlUser} joined`);
    assert.ok((await charX(joined, 3)) < (await charX(joined, 0)), 'the name keeps its own order');
    assert.ok((await charX(joined, 0)) < (await charX(joined, 5)), 'and stays left of "joined"');
    assert.equal(await joined.locator('bdi').textContent(), rtlUser);
    // A message takes its direction from its own text.
    const rtlText = messageItem(bob, 'שלום!').locator('.text');
    assert.equal(await rtlText.evaluate((el) => getComputedStyle(el).direction), 'rtl');
    assert.ok((await charX(rtlText, 4)) < (await charX(rtlText, 0)), 'the "!" ends the right-to-left text');
    const ltrText = messageItem(bob, 'hello (left to right)').locator('.text');
    assert.equal(await ltrText.evaluate((el) => getComputedStyle(el).direction), 'ltr');

    // Every user-provided string on both pages is isolated, wherever it is shown.
    await bob.getByLabel('Join or create a room').fill('bad\u200broom'); // refused: an alert names the room
    await bob.getByLabel('Join or create a room').press('Enter');
    await bob.locator('#alerts .alert', { hasText: 'room name must not contain invisible' }).waitFor({ timeout: UI_TIMEOUT });
    for (const [who, page] of [['bob', bob], ['sara', sara]]) {
      const styles = await page
        .locator('.author, .room-name, .user-name, #me-name, #room-title bdi, li.system bdi, #alerts bdi, .text')
        .evaluateAll((els) => els.map((el) => [el.className || el.id || el.tagName, getComputedStyle(el).unicodeBidi]));
      assert.ok(styles.length >= 8, `${who}: found the names and texts: ${JSON.stringify(styles)}`);
      for (const [what, bidi] of styles) {
        assert.ok(['isolate', 'plaintext', 'isolate-override'].includes(bidi), `${who}: ${what} is isolated (${bidi})`);
      }
      const placeholder = await page.locator('#composer-input').getAttribute('placeholder');
      assert.equal(placeholder, `Message #\u2068${rtlRoom}\u2069`, `${who}: the room name in the placeholder is isolated`);
    }
    assert.equal(await bob.locator('#alerts bdi').first().textContent(), 'bad\u200broom');
  }, { consoleErrors: 'allowed' }); // the refused room is logged

  scenario('a busy server at sign-in: the form says so, counts down and signs in by itself', async ({ open }) => {
    const page = await open();
    let busy = 1;
    await page.route(
      (url) => url.pathname === '/api/session',
      (route) => (busy-- > 0 ? route.fulfill(refusal(503, 'the server is full; retry later', { retryAfter: 1 })) : route.fallback()),
    );
    await page.getByLabel('Your name').fill('patient');
    await page.getByLabel('Your name').press('Enter');
    await page.locator('#login-status', { hasText: 'The server is busy: the server is full; retry later.' }).waitFor({ timeout: UI_TIMEOUT });
    await page.locator('#login-countdown', { hasText: /^Trying again in 1s…$/ }).waitFor({ timeout: UI_TIMEOUT });
    await waitForConnection(page, 'online');
    assert.equal(page.sessionChecks.length, 2);
    assert.equal(page.sockets.length, 1, 'no WebSocket before the server said yes');
    assert.equal(await page.locator('#me-name').textContent(), 'patient');
  }, { consoleErrors: 'allowed' });

  scenario('a reconnect the server would refuse is not retried in silence: busy counts down, forbidden stops', async ({ open }) => {
    const page = await open();
    await signIn(page, 'alice');
    await joinRoom(page, 'checks', { me: 'alice' });
    // What /api/session answers while the server is away (then the real one again).
    const answers = [
      refusal(503, 'the server is full; retry later', { retryAfter: 1 }),
      refusal(403, 'origin "http://evil.example" may not open WebSockets here (ALLOWED_ORIGINS)'),
    ];
    await page.route(
      (url) => url.pathname === '/api/session',
      (route) => (answers.length ? route.fulfill(answers.shift()) : route.fallback()),
    );
    const startAgain = await stopServer();
    // An attempt that never opens is followed by a check: busy, with the server's reason…
    await page.locator('#conn-detail', { hasText: /^The server is full; retry later\. Retrying in \d+s$/ }).waitFor({ timeout: RECONNECT_TIMEOUT });
    // …then forbidden: it stops and says why.
    await waitForConnection(page, 'refused', RECONNECT_TIMEOUT);
    await page.locator('#alerts .alert', { hasText: 'The server refused the connection: origin "http://evil.example" may not open WebSockets here' }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await page.locator('#conn-label').textContent(), 'Not connected');
    assert.match(await page.locator('#conn-detail').textContent(), /may not open WebSockets here/);
    assert.equal(answers.length, 0);
    const checks = page.sessionChecks.length;
    const sockets = page.sockets.length;

    await startAgain();
    assert.equal(page.sessionChecks.length, checks, 'refused: no more checks by itself');
    assert.equal(page.sockets.length, sockets, 'refused: no more attempts by itself');
    await page.getByRole('button', { name: 'Retry now' }).click(); // the person may try again
    await waitForConnection(page, 'online', RECONNECT_TIMEOUT);
    await presenceItem(page, 'alice').waitFor({ state: 'attached', timeout: UI_TIMEOUT });
  }, { consoleErrors: 'allowed' });

  scenario("the page keeps to connect-src 'self', and a breach of it would be caught", async ({ open }) => {
    const page = await open();
    await signIn(page, 'csp');
    await joinRoom(page, 'csp-room', { me: 'csp' });
    await send(page, 'under the policy');
    await waitForMessage(page, 'under the policy');
    assert.equal(new URL(page.sockets[0].url).host, new URL(server.baseUrl).host, 'the WebSocket is same-origin');
    // The control: a WebSocket to another host name of the same server is blocked, and seen.
    await page.evaluate((port) => {
      try {
        // eslint-disable-next-line no-new
        new WebSocket(`ws://localhost:${port}/ws?user=x`);
      } catch {
        // some browsers throw instead of failing the connection
      }
    }, server.port);
    await waitUntil('the CSP violation to be reported', () => page.cspViolations.length > 0);
    assert.match(page.cspViolations[0], /^connect-src ws:\/\/localhost:\d+/);
    page.cspViolations.length = 0; // provoked on purpose
  }, { consoleErrors: 'allowed' });
});

describe('chatterbox in a browser: resume first', () => {
  // Two connection slots, one kept for clients that resume: with the other one taken, only a
  // reconnect that carries a valid resume ticket gets in.
  const ENV = { MAX_CONNECTIONS: '2', RESUME_RESERVE_PERCENT: '50', RESUME_TICKET_MIN_AGE_SECONDS: '0' };
  let own;
  let ownDir;
  let ownDb;
  before(async () => {
    ownDir = await makeTempDir();
    ownDb = path.join(ownDir, 'chat.db');
    own = await startServer({ dbPath: ownDb, env: ENV });
  });
  after(async () => {
    await own?.stop();
    await removeDir(ownDir);
  });

  scenario('after a restart the page reconnects with its resume ticket, ahead of new arrivals', async ({ open }) => {
    const alice = await open();
    await signIn(alice, 'alice');
    await joinRoom(alice, 'resume-first', { me: 'alice' });
    const first = alice.sockets[0];
    assert.equal(new URL(first.url).searchParams.get('resume'), '', 'the first connection asks for a ticket');
    await waitUntil('the welcome frame', () => first.received.some((f) => f.type === 'welcome'));
    const welcome = first.received.find((f) => f.type === 'welcome');
    assert.equal(welcome.user, 'alice');
    assert.ok(typeof welcome.resume === 'string' && welcome.resume.length > 0);
    assert.equal(await activeLog(alice).locator('li').count(), 0, 'the welcome is not shown');
    assert.equal(await alice.locator('#alerts .alert').count(), 0);

    // The server restarts while alice is offline, and a newcomer takes the one slot for new arrivals.
    const port = own.port;
    const exit = await own.stop();
    assert.equal(exit.code, 0);
    await waitForConnection(alice, 'reconnecting');
    await alice.context().setOffline(true);
    await waitForConnection(alice, 'offline');
    own = await startServer({ dbPath: ownDb, port, env: ENV });
    const bob = await open();
    await signIn(bob, 'bob');
    // Another newcomer is refused: /api/session already answers 503 when no slot for new
    // arrivals is free, so the form says the server is busy and nothing connects.
    const carol = await open();
    await carol.getByLabel('Your name').fill('carol');
    await carol.getByLabel('Your name').press('Enter');
    await carol.locator('#login-status', { hasText: 'The server is busy' }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(carol.sockets.length, 0, 'new arrivals are refused before any WebSocket opens');

    await alice.context().setOffline(false);
    await waitForConnection(alice, 'online', RECONNECT_TIMEOUT);
    const last = alice.sockets.at(-1);
    assert.equal(new URL(last.url).searchParams.get('resume'), welcome.resume, 'the reconnect carried the ticket');
    await presenceItem(alice, 'alice').waitFor({ state: 'attached', timeout: UI_TIMEOUT });
  }, { consoleErrors: 'allowed', target: () => own });
});

describe('chatterbox in a browser: token mode', () => {
  const SECRET = 'browser-tests-secret-at-least-32-bytes-long';
  let own;
  let ownDir;
  before(async () => {
    ownDir = await makeTempDir();
    own = await startServer({ dbPath: path.join(ownDir, 'chat.db'), env: { AUTH_SECRET: SECRET } });
  });
  after(async () => {
    await own?.stop();
    await removeDir(ownDir);
  });
  const target = () => own;

  scenario('a #token= link signs in, the token leaves the address bar, and two people chat', async ({ open }) => {
    const aliceToken = await mintToken(SECRET, 'alice', { rooms: 'team-*' });
    const bobToken = await mintToken(SECRET, 'bob');
    const bearer = [];
    const alice = await open({
      path: `/#token=${aliceToken}`,
      setup: (context) =>
        context.on('request', (r) => {
          if (new URL(r.url()).pathname === '/api/rooms') bearer.push(r.headers().authorization);
        }),
    });
    await waitForConnection(alice, 'online');
    assert.equal(new URL(alice.url()).hash, '', 'the token left the address bar');
    assert.ok(!alice.url().includes(aliceToken));
    assert.equal(await alice.locator('#me-name').textContent(), 'alice', 'the name is the token’s');
    await alice.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: UI_TIMEOUT });
    for (const { url } of alice.sockets) {
      assert.ok(!url.includes(aliceToken) && !/[?&]user=/.test(url), `the token goes as a subprotocol, not in ${url}`);
    }
    await alice.locator('#new-room-hint', { hasText: 'Your token lets you join: team-*' }).waitFor({ timeout: UI_TIMEOUT });
    await joinRoom(alice, 'team-x', { me: 'alice' });
    await waitUntil('a REST request', () => bearer.length > 0);
    assert.deepEqual([...new Set(bearer)], [`Bearer ${aliceToken}`], 'REST requests carry the token');

    // Bob has no link: he types a name, the server wants a token, the form asks for it.
    const bob = await open();
    await bob.getByLabel('Your name').fill('bob');
    await bob.getByLabel('Your name').press('Enter');
    await bob.getByLabel('Sign-in token').waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await bob.evaluate(() => document.activeElement?.id), 'login-token');
    assert.equal(await bob.getByLabel('Your name').isVisible(), false);
    assert.deepEqual(await axeViolations(bob), [], 'the token form');
    await signInWithToken(bob, `  ${bobToken}\n`); // as pasted
    assert.equal(await bob.locator('#me-name').textContent(), 'bob');
    await joinRoom(bob, 'team-x', { me: 'bob' });
    await presenceItem(alice, 'bob').waitFor({ timeout: UI_TIMEOUT });
    await send(alice, 'hi bob');
    await waitForMessage(bob, 'hi bob');
    await send(bob, 'hi alice');
    await waitForMessage(alice, 'hi alice');

    // A reload keeps the tab signed in (the token is in sessionStorage); the URL stays clean.
    await alice.reload();
    await waitForConnection(alice, 'online');
    await waitForMessage(alice, 'hi alice');
    assert.equal(new URL(alice.url()).hash, '');
    assert.equal(await alice.locator('#me-name').textContent(), 'alice');
  }, { target, consoleErrors: 'allowed' }); // bob's first check is a 401

  scenario('a token the server refuses is shown to the person, and nothing connects', async ({ open }) => {
    const expired = craftToken(SECRET, { sub: 'alice', exp: Math.floor(Date.now() / 1000) - 3600 });
    const page = await open({ path: `/#token=${expired}` });
    await page.locator('#token-error', { hasText: 'The server refused this token: token expired.' }).waitFor({ timeout: UI_TIMEOUT });
    await page.locator('#alerts .alert', { hasText: 'Your sign-in token was refused: token expired.' }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(new URL(page.url()).hash, '', 'a refused token leaves the address bar too');
    assert.equal(await page.getByLabel('Sign-in token').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'login-token');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('chatterbox.token')), null, 'a refused token is not kept');

    const forged = await mintToken('another-secret-also-at-least-32-bytes-long', 'alice');
    await page.getByLabel('Sign-in token').fill(forged);
    await page.getByLabel('Sign-in token').press('Enter');
    await page.locator('#token-error', { hasText: 'The server refused this token: token signature is invalid.' }).waitFor({ timeout: UI_TIMEOUT });
    assert.deepEqual(await axeViolations(page), [], 'the token form with its error');
    assert.equal(page.sessionChecks.length, 2);
    assert.equal(page.sockets.length, 0, 'no WebSocket with a refused token');
    assert.equal(await page.locator('#conn').getAttribute('data-state'), 'offline');
    assert.equal(await page.locator('#login-countdown').textContent(), '', 'no retry is pending');
  }, { target, consoleErrors: 'allowed' });

  scenario('close code 4001 (token expired): the page asks for a new token, never reconnects with the old one', async ({ open }) => {
    let route = null;
    let opened = 0;
    const page = await open({
      path: `/#token=${await mintToken(SECRET, 'carol')}`,
      setup: (context) =>
        context.routeWebSocket(/\/ws\?/, (ws) => {
          opened += 1;
          route = ws;
          const upstream = ws.connectToServer();
          ws.onMessage((message) => upstream.send(message));
          upstream.onMessage((message) => ws.send(message));
        }),
    });
    await waitForConnection(page, 'online');
    await joinRoom(page, 'carols-room', { me: 'carol' });
    await route.close({ code: 4001, reason: 'token expired' }); // as the server will when a token runs out

    await page.locator('#token-error', { hasText: 'token expired' }).waitFor({ timeout: UI_TIMEOUT });
    await page.locator('#alerts .alert', { hasText: 'Your sign-in token expired. Paste a new one to go on.' }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'login-token');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('chatterbox.token')), null);
    assert.equal(opened, 1, 'no reconnect with the expired token');

    // A new token for the same person: back in, in the same room.
    await signInWithToken(page, await mintToken(SECRET, 'carol'));
    await page.locator('#room-title', { hasText: '#carols-room' }).waitFor({ timeout: UI_TIMEOUT });
    await presenceItem(page, 'carol').waitFor({ state: 'attached', timeout: UI_TIMEOUT });
    assert.equal(opened, 2);
  }, { target, consoleErrors: 'allowed' });
});
