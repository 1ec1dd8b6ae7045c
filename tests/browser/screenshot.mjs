// Makes docs/screenshot.png: a realistic conversation (three people, a few rooms, presence),
// seen by one of them. Also writes narrow-screen and dark-mode shots to artifacts/ for review.
//
//   CHATTERBOX_BIN=target/debug/chatterbox CHROMIUM_BIN=/usr/bin/chromium node tests/browser/screenshot.mjs

import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import {
  ARTIFACTS,
  HERE,
  UI_TIMEOUT,
  joinRoom,
  launchBrowser,
  makeTempDir,
  openPage,
  presenceItem,
  removeDir,
  send,
  signIn,
  startServer,
  waitForMessage,
} from './harness.mjs';

const OUT = path.resolve(HERE, '../../docs/screenshot.png');

const dir = await makeTempDir();
const server = await startServer({ dbPath: path.join(dir, 'chat.db') });
const browser = await launchBrowser();

async function person(name, rooms, options) {
  const page = await openPage(browser, server.baseUrl, options);
  await signIn(page, name);
  for (const room of rooms) await joinRoom(page, room, { me: name });
  return page;
}

async function say(page, room, text) {
  await page.locator('#joined-rooms').getByRole('button', { name: new RegExp(`^${room}`) }).click();
  await send(page, text);
  await waitForMessage(page, text);
}

try {
  const alice = await person('alice', ['general', 'rust-help']);
  const bob = await person('bob', ['general', 'rust-help']);
  const carol = await person('carol', ['general', 'random']);
  const dave = await person('dave', ['random']);

  await say(alice, 'general', 'Morning all! Did the new build go out?');
  await say(bob, 'general', 'Yes, deployed at 9:00. History now survives restarts.');
  await say(carol, 'general', 'Nice. I restarted my laptop mid-conversation and nothing went missing.');
  await say(alice, 'general', 'That is the resume-from-last-id logic at work.');
  await say(bob, 'general', 'Lunch at 12:30? The usual place.');
  await say(carol, 'general', 'Count me in.');
  await say(dave, 'random', 'Has anyone seen my blue mug?');
  await say(bob, 'rust-help', 'Quick one: why does my future need to be Send for tokio::spawn?');
  await say(bob, 'rust-help', 'Ah, a MutexGuard held across an .await. Found it.');

  // Alice reads #general; #rust-help has unread messages from bob.
  await alice.locator('#joined-rooms').getByRole('button', { name: /^general/ }).click();
  await waitForMessage(alice, 'Count me in.');
  await presenceItem(alice, 'carol').waitFor({ timeout: UI_TIMEOUT });
  await alice.locator('#all-rooms').getByText('random', { exact: true }).waitFor({ timeout: UI_TIMEOUT });
  await alice.locator('#composer-input').fill('Sounds good, see you there');
  await mkdir(path.dirname(OUT), { recursive: true });
  await alice.screenshot({ path: OUT });
  console.log(`wrote ${OUT}`);

  // For review only.
  await mkdir(ARTIFACTS, { recursive: true });
  const narrow = await person('erin', ['general'], { viewport: { width: 390, height: 780 } });
  await waitForMessage(narrow, 'Count me in.');
  await narrow.screenshot({ path: path.join(ARTIFACTS, 'screenshot-narrow.png') });
  await narrow.getByRole('button', { name: 'Rooms' }).click();
  await narrow.locator('#sidebar').waitFor({ state: 'visible' });
  await narrow.waitForFunction(() => document.getElementById('sidebar').getBoundingClientRect().left === 0);
  await narrow.screenshot({ path: path.join(ARTIFACTS, 'screenshot-narrow-rooms.png') });
  const dark = await person('frank', ['general'], { colorScheme: 'dark' });
  await waitForMessage(dark, 'Count me in.');
  await dark.screenshot({ path: path.join(ARTIFACTS, 'screenshot-dark.png') });
  console.log(`wrote review shots to ${ARTIFACTS}`);
} finally {
  await browser.close();
  await server.stop();
  await removeDir(dir);
}
