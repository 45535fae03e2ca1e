// The www/ demos in headless Chromium (Debian's `chromium`, driven by playwright-core).
// Two chat pages in two browser contexts (two cookie jars = two browsers): one on long-polling,
// one on callback-polling (real JSONP through <script> tags). Screenshots go to
// $BX_E2E_SHOTS (default build/e2e-screenshots). If the browser cannot start, the suite fails.
// Pages: BX_E2E_WWW_URL (nginx of the private stack); without it a local proxy serves www/
// and forwards /cometd to BX_E2E_URL.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { SERVER_URL } from './lib/bayeux.mjs';
import { BayeuxProxy } from './lib/proxy.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = process.env.BX_E2E_SHOTS || path.join(ROOT, 'build/e2e-screenshots');
const CHROMIUM = process.env.BX_E2E_CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = 10000;

describe('www demos in headless Chromium', () => {
  let browser, proxy, base;
  const pages = [];
  const pageErrors = [];
  const room = 'r' + Date.now().toString(36);

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    base = process.env.BX_E2E_WWW_URL;
    if (!base) {
      proxy = await new BayeuxProxy(SERVER_URL, path.join(ROOT, 'www')).start();
      base = proxy.origin() + '/';
    }
    assert.ok(fs.existsSync(path.join(ROOT, 'www/js/cometd/cometd.js')), 'www/js/cometd missing: run www/build.sh');
    // playwright-core starts it with a fresh temporary --user-data-dir of its own.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000 });
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (proxy) await proxy.stop();
  });

  // A page in its own browser context: own cookies (BAYEUX_BROWSER), own sessionStorage.
  async function openPage(name, url) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', e => pageErrors.push(`${name}: ${e.message}`));
    page.on('console', m => { if (m.type() === 'error') console.log(`[${name} console] ${m.text()}`); });
    await page.goto(base + url);
    pages.push({ name, page, context });
    return page;
  }
  const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true }).catch(() => {});

  async function join(page, user) {
    await page.fill('#username', user);
    await page.fill('#room', room);
    await page.click('#join');
    await page.waitForSelector('#status.connected', { timeout: WAIT });
  }
  async function say(page, text, peer = '') {
    if (peer) await page.selectOption('#peer', peer, { timeout: WAIT });
    else await page.selectOption('#peer', '');
    await page.fill('#phrase', text);
    await page.click('#send');
  }
  const seesLine = (page, text, cls = '.msg') =>
    page.waitForFunction(([t, c]) => [...document.querySelectorAll('#messages ' + c)].some(d => d.textContent.includes(t)),
      [text, cls], { timeout: WAIT });

  test('two chat pages join a room and exchange messages both ways', async () => {
    const a = await openPage('alice', 'chat.html?transport=long-polling');
    const bt = process.env.BX_E2E_PAGE_B_TRANSPORT || 'callback-polling';
    const b = await openPage('bob', 'chat.html?transport=' + bt);
    try {
      await join(a, 'alice');
      await join(b, 'bob');
      assert.match(await a.textContent('#status'), /long-polling/);
      assert.equal(await b.textContent('#status'), 'connected via ' + bt);
      await seesLine(a, 'bob has joined', '.msg.system');
      await say(a, 'hello from alice');
      await seesLine(b, 'hello from alice');
      await say(b, 'hi alice, bob here');
      await seesLine(a, 'hi alice, bob here');
      await seesLine(a, 'hello from alice'); // the publisher gets its own message too
    } finally {
      await shot(a, 'chat-alice'); await shot(b, 'chat-bob');
    }
    assert.deepEqual(pageErrors, []);
  });

  test('the member list shows both members (/service/members)', async () => {
    const [a, b] = pages.map(p => p.page);
    try {
      for (const p of [a, b]) {
        await p.waitForFunction(() => {
          const names = [...document.querySelectorAll('#members li')].map(li => li.textContent);
          return names.includes('alice') && names.includes('bob');
        }, null, { timeout: WAIT }).catch(async e => {
          throw new Error(`member list of ${await p.title()}: [${await p.$$eval('#members li', l => l.map(x => x.textContent))}]; ` +
            `notice: "${await p.textContent('#notice')}" (${e.message.split('\n')[0]})`);
        });
      }
    } finally {
      await shot(a, 'members-alice');
    }
  });

  test('a private message reaches only its peer (/service/privatechat)', async () => {
    const [a, b] = pages.map(p => p.page);
    const c = await openPage('carol', 'chat.html?transport=long-polling');
    try {
      await join(c, 'carol');
      await seesLine(a, 'carol has joined', '.msg.system');
      await say(a, 'psst bob, secret', 'bob');
      await seesLine(b, 'psst bob, secret', '.msg.private');
      await seesLine(a, 'psst bob, secret', '.msg.private'); // the sender's copy
      await say(a, 'public after secret');
      await seesLine(c, 'public after secret');
      const leaked = await c.$$eval('#messages .msg', l => l.some(d => d.textContent.includes('psst bob')));
      assert.equal(leaked, false, 'carol must not see the private message');
    } finally {
      await shot(a, 'private-alice'); await shot(b, 'private-bob');
    }
  });

  test('a page reload resumes the same session (ReloadExtension)', async () => {
    const a = pages.find(p => p.name === 'alice').page;
    const c = pages.find(p => p.name === 'carol').page;
    const before = await a.evaluate(() => window.bxChat.cometd.getClientId());
    assert.match(before || '', /^[0-9a-z]{20,}$/);
    await a.reload();
    try {
      await a.waitForSelector('#status.connected', { timeout: WAIT });
      const after = await a.evaluate(() => window.bxChat.cometd.getClientId());
      assert.equal(after, before, 'same clientId after the reload');
      await say(c, 'carol to the reloaded alice');
      await seesLine(a, 'carol to the reloaded alice');
      await say(a, 'alice is back');
      await seesLine(c, 'alice is back');
      const rejoins = await c.$$eval('#messages .msg', l => l.filter(d => d.textContent.includes('alice has joined')).length);
      assert.equal(rejoins, 0, 'a reload is not a new join');
    } finally {
      await shot(a, 'reload-alice');
    }
  });

  test('a browser that goes away mid-poll does not disturb the others', async () => {
    const [a, b] = pages.map(p => p.page);
    // bob's poll is held right now; close his whole browser without leaving the room.
    await pages.find(p => p.name === 'bob').context.close();
    await say(a, 'still here after bob vanished');
    await seesLine(a, 'still here after bob vanished');
    const c = pages.find(p => p.name === 'carol').page;
    await seesLine(c, 'still here after bob vanished');
    await say(c, 'carol answers');
    await seesLine(a, 'carol answers');
    assert.ok(b.isClosed());
  });

  test('reliable chat shows ack batches', async () => {
    const p = await openPage('ack', 'chat.html?ack=1');
    try {
      await join(p, 'dave');
      await p.waitForFunction(() => /^\d+$/.test(document.getElementById('ackBatch').textContent), null, { timeout: WAIT });
      await say(p, 'reliable hello');
      await seesLine(p, 'reliable hello');
      assert.equal(await p.textContent('#notice'), '', 'no notice: ' + await p.textContent('#notice'));
    } finally {
      await shot(p, 'reliable-chat');
    }
  });

  test('echo page: remoteCall round trip', async () => {
    const p = await openPage('echo', 'echo.html');
    try {
      await p.waitForSelector('#status.connected', { timeout: WAIT });
      await p.fill('#text', 'echo me 123');
      await p.click('#call');
      await p.waitForFunction(() => /echo me 123/.test(document.getElementById('messages').textContent) ||
        document.getElementById('notice').textContent !== '', null, { timeout: WAIT });
      assert.equal(await p.textContent('#notice'), '', 'echo failed: ' + await p.textContent('#notice'));
      assert.match(await p.textContent('#messages'), /echo me 123/);
    } finally {
      await shot(p, 'echo');
    }
  });

  test('timesync clock gets server samples', async () => {
    const p = await openPage('clock', 'timesync.html');
    try {
      await p.waitForSelector('#status.connected', { timeout: WAIT });
      await p.waitForFunction(() => Number(document.getElementById('samples').textContent) >= 1 ||
        document.getElementById('notice').textContent !== '', null, { timeout: WAIT });
      assert.equal(await p.textContent('#notice'), '', 'timesync: ' + await p.textContent('#notice'));
      const last = JSON.parse(await p.textContent('#last'));
      for (const k of ['tc', 'ts', 'p', 'a']) assert.equal(typeof last[k], 'number', `ext.timesync.${k}: ${JSON.stringify(last)}`);
      assert.ok(Math.abs(Number(await p.textContent('#offset'))) < 1000, 'offset on one machine is small');
    } finally {
      await shot(p, 'timesync');
    }
  });

  test('index page links every demo', async () => {
    const p = await openPage('index', '');
    const links = await p.$$eval('a', l => l.map(a => a.getAttribute('href')));
    for (const h of ['chat.html', 'chat.html?ack=1', 'echo.html', 'timesync.html']) assert.ok(links.includes(h), h);
    await shot(p, 'index');
    assert.deepEqual(pageErrors, []);
  });
});
