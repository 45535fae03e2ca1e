#!/usr/bin/env node
// Capacity: CLIENTS sessions each park one /meta/connect on the server at once; reports the RSS
// the worker(s) and nginx gain per parked poll, and whether every poll is answered by the server
// within its long-poll timeout (+ GRACE s). Prints a summary on stderr, --json one line on stdout.
//   node bench/capacity.js --url URL --clients 10000 [--hold 20] [--grace 5] [--worker-pids P,..] [--pids P,..]
//        [--transport websocket (node --experimental-websocket): idle WebSocket connections instead]
'use strict';
const { BayeuxPoster } = require('./lib/http');
const { WsClient } = require('./lib/ws');
const { parseFlags } = require('./lib/cli');
const S = require('./lib/sample');
const { nowUs } = require('./lib/clock');

const o = parseFlags('capacity.js', process.argv.slice(2),
  { url: '', clients: 10000, hold: 20, grace: 5, concurrency: 200, 'worker-pids': '', pids: '', transport: 'long-polling', label: 'capacity', json: false },
  { clients: [1, 1e6], hold: [0.1, 3600], grace: [0, 3600], concurrency: [1, 100000] });
const url = o.parsedUrl;
const workerPids = o.pidList(o['worker-pids']);
const otherPids = o.pidList(o.pids).filter((p) => !workerPids.includes(p));
const poster = new BayeuxPoster(url);
const WS = o.transport === 'websocket';
if (!WS && o.transport !== 'long-polling') { process.stderr.write(`capacity.js: --transport must be long-polling or websocket\n`); process.exit(2); }
if (WS && typeof WebSocket !== 'function') { process.stderr.write('capacity.js: websocket needs node --experimental-websocket (Node 20)\n'); process.exit(2); }

const errors = {};
const err = (k) => { errors[k] = (errors[k] || 0) + 1; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function post(c, body, timeoutMs) {
  return new Promise((resolve) => {
    if (WS) c.ws.post(body, timeoutMs, (e, msgs) => resolve({ e, msgs }));
    else poster.post(c, c.conn, JSON.stringify(body), timeoutMs, (e, msgs) => resolve({ e, msgs }));
  });
}

async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function main() {
  const rss = () => ({ worker: S.rssKb(S.procSnapshot(workerPids)), other: S.rssKb(S.procSnapshot(otherPids)) });
  // Long-polling: one held request per session. WebSocket: one idle connection per session,
  // with its /meta/connect held the same way.
  const clients = Array.from({ length: o.clients }, () => (WS ? { ws: new WsClient(o.url, () => {}), id: null }
    : { conn: poster.conn(), cookie: '', id: null }));
  const r = { label: o.label, url: o.url, transport: o.transport, clients: o.clients, holdSec: o.hold, graceSec: o.grace };
  const base = rss();
  const t0 = Date.now();
  await pool(clients, o.concurrency, async (c) => {
    const h = await post(c, [{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: [o.transport], id: '1' }], 10000);
    const hr = h.msgs && h.msgs.find((m) => m.channel === '/meta/handshake');
    if (!hr || !hr.successful) { err('handshake:' + (h.e || hr && hr.error || 'no-reply')); return; }
    c.id = hr.clientId;
    const f = await post(c, [{ channel: '/meta/connect', clientId: c.id, connectionType: o.transport, id: '2', advice: { timeout: 0 } }], 10000);
    if (f.e) { err('first-connect:' + f.e); c.id = null; }
  });
  r.handshakeSec = (Date.now() - t0) / 1000;
  const ok = clients.filter((c) => c.id);
  r.sessions = ok.length;
  // Park one connect per session, all at once (the server holds each for its timeout).
  let returned = 0, answered = 0, late = 0, failed = 0;
  const done = ok.map((c) => new Promise((resolve) => {
    const sent = nowUs();
    post(c, [{ channel: '/meta/connect', clientId: c.id, connectionType: o.transport, id: '3' }], (o.hold + o.grace + 30) * 1000).then((x) => {
      returned++;
      const sec = (nowUs() - sent) / 1e6;
      const rep = x.msgs && x.msgs.find((m) => m.channel === '/meta/connect');
      if (x.e || !rep || rep.successful !== true) { failed++; err('held-connect:' + (x.e || (rep && rep.error) || 'no-reply')); }
      else if (sec <= o.hold + o.grace) answered++;
      else late++;
      resolve();
    });
  }));
  await sleep(Math.min(5000, o.hold * 500));
  r.parked = ok.length - returned;
  const held = rss();
  r.workerRssKb = held.worker; r.otherRssKb = held.other;
  r.workerKbPerPoll = r.parked ? +((held.worker - base.worker) / r.parked).toFixed(2) : null;
  r.nginxKbPerPoll = r.parked ? +((held.other - base.other) / r.parked).toFixed(2) : null;
  await Promise.all(done);
  Object.assign(r, { answered, late, failed, errors });
  await pool(ok, o.concurrency, (c) => post(c, [{ channel: '/meta/disconnect', clientId: c.id, id: '4' }], 3000));
  for (const c of clients) (WS ? c.ws : c.conn).destroy();
  if (!ok.length) r.error = `no session: ${Object.keys(errors).join(', ')}`;
  else if (failed > ok.length * 0.05) r.error = `${failed} of ${ok.length} held connects failed`;
  process.stderr.write(`capacity: ${r.sessions}/${r.clients} sessions (${r.handshakeSec} s), ${r.parked} parked; worker RSS ` +
    `+${r.workerKbPerPoll} KB/poll, other server processes +${r.nginxKbPerPoll} KB/poll; answered within ${o.hold}+${o.grace} s: ` +
    `${answered}, late ${late}, failed ${failed} (${o.transport})${Object.keys(errors).length ? ' ' + JSON.stringify(errors) : ''}\n`);
  if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
}

const watchdog = setTimeout(() => {
  process.stderr.write('capacity.js: watchdog fired\n');
  if (o.json) process.stdout.write(JSON.stringify({ label: 'capacity', clients: o.clients, error: 'watchdog: run did not finish' }) + '\n');
  process.exit(1);
},
  (o.clients / 20 + o.hold + o.grace + 120) * 1000);
watchdog.unref();
main().then(() => process.exit(0), (e) => { process.stderr.write(`capacity.js: ${e.stack || e}\n`); process.exit(1); });
