// One generator thread: a share of the Bayeux clients, long-polling over raw HTTP/1.1
// keep-alive (no official client: far heavier than the server it measures) or WebSocket.
// Protocol: handshake → one batched subscribe to its rooms → first connect with
// advice.timeout 0 → connect loop; publishers send batches of BATCH publishes and
// wait for the reply before their next batch, so a publisher's sequence numbers
// must arrive in order at every receiver (what CometD guarantees per session).
'use strict';
const { parentPort, workerData: W } = require('worker_threads');
const { BayeuxPoster } = require('./http');
const { WsClient } = require('./ws');
const { nowUs, SEQ_SPAN } = require('./clock');

const poster = new BayeuxPoster(new URL(W.url));
const WS = W.transport === 'websocket';
const stats = {
  handshakes: 0, rehandshakes: 0, setupFailed: 0, connects: 0,
  batchesSent: 0, published: 0, publishFailed: 0, skipped: 0, expected: 0,
  received: 0, dup: 0, ooo: 0, foreign: 0, errors: {},
};
let lat = new Float64Array(1 << 16), nlat = 0;
let stopping = false, publishing = false;
const clients = W.clients.map((g, i) => ({
  g, rooms: W.rooms[i], clientId: null, cookie: '', msgId: 0, seq: 0,
  ready: false, busy: false, seen: new Set(), last: new Map(),
  // Two connections per client, like a browser: one for the held /meta/connect, one for the rest.
  cc: WS ? null : poster.conn(), pc: WS ? null : poster.conn(), ws: null,
}));
// Over WebSocket, deliveries are pushed between replies.
if (WS) for (const c of clients) c.ws = new WsClient(W.url, (msgs) => takeDeliveries(c, msgs));

function err(kind) { stats.errors[kind] = (stats.errors[kind] || 0) + 1; }

// POST a Bayeux batch on conn; cb(error-kind|null, messages[]). Every request has a timeout.
function post(c, conn, body, timeoutMs, cb) {
  if (WS) c.ws.post(body, timeoutMs, cb);
  else poster.post(c, conn, JSON.stringify(body), timeoutMs, cb);
}

// Deliveries can ride on any reply (CometD may piggyback on a publish reply).
function takeDeliveries(c, msgs) {
  const t = nowUs();
  for (const m of msgs) {
    if (!m || typeof m.channel !== 'string' || m.channel.startsWith('/meta/') || m.data === undefined) continue;
    const d = m.data;
    if (!d || typeof d.p !== 'number' || typeof d.s !== 'number' || typeof d.t !== 'number') { stats.foreign++; continue; }
    const key = d.p * SEQ_SPAN + d.s;
    if (c.seen.has(key)) { stats.dup++; continue; }
    c.seen.add(key);
    const last = c.last.get(d.p);
    if (last !== undefined && d.s < last) stats.ooo++; else c.last.set(d.p, d.s);
    stats.received++;
    if (nlat === lat.length) { const n = new Float64Array(lat.length * 2); n.set(lat); lat = n; }
    lat[nlat++] = t - d.t;
  }
}

function metaReply(msgs, channel) { return msgs.find((m) => m && m.channel === channel); }

function handshake(c, cb) {
  c.clientId = null; c.ready = false;
  post(c, c.pc, [{ channel: '/meta/handshake', version: '1.0', minimumVersion: '1.0',
    supportedConnectionTypes: [W.transport], id: String(++c.msgId) }], W.requestTimeoutMs, (e, msgs) => {
    if (e) return cb(e);
    const r = metaReply(msgs, '/meta/handshake');
    if (!r || r.successful !== true || !r.clientId) return cb('handshake-refused');
    c.clientId = r.clientId;
    stats.handshakes++;
    const subs = c.rooms.map((room) => ({ channel: '/meta/subscribe', clientId: c.clientId,
      subscription: '/chat/' + room, id: String(++c.msgId) }));
    post(c, c.pc, subs, W.requestTimeoutMs, (e2, msgs2) => {
      if (e2) return cb(e2);
      takeDeliveries(c, msgs2);
      const ok = msgs2.filter((m) => m && m.channel === '/meta/subscribe' && m.successful === true).length;
      if (ok !== c.rooms.length) return cb('subscribe-refused');
      // First connect is not held (CometD's client sends advice.timeout 0).
      post(c, c.cc, [{ channel: '/meta/connect', clientId: c.clientId, connectionType: W.transport,
        id: String(++c.msgId), advice: { timeout: 0 } }], W.requestTimeoutMs, (e3, msgs3) => {
        if (e3) return cb(e3);
        takeDeliveries(c, msgs3);
        const r3 = metaReply(msgs3, '/meta/connect');
        if (!r3 || r3.successful !== true) return cb('connect-refused');
        c.ready = true;
        cb(null);
      });
    });
  });
}

function connectLoop(c) {
  if (stopping) return;
  post(c, c.cc, [{ channel: '/meta/connect', clientId: c.clientId, connectionType: W.transport,
    id: String(++c.msgId) }], W.connectTimeoutMs, (e, msgs) => {
    if (stopping) return;
    if (e) { err('connect:' + e); return setTimeout(() => connectLoop(c), 200); }
    stats.connects++;
    takeDeliveries(c, msgs);
    const r = metaReply(msgs, '/meta/connect');
    const advice = (r && r.advice) || {};
    if (r && r.successful === true) {
      return advice.interval > 0 ? setTimeout(() => connectLoop(c), advice.interval) : connectLoop(c);
    }
    err('connect:' + ((r && r.error) || 'no-reply'));
    if (advice.reconnect === 'none') return;
    if (advice.reconnect === 'handshake' || (r && /^402/.test(r.error || ''))) {
      stats.rehandshakes++;
      return handshake(c, (he) => { if (he) { err('rehandshake:' + he); setTimeout(() => connectLoop(c), 500); } else connectLoop(c); });
    }
    setTimeout(() => connectLoop(c), Math.max(advice.interval || 0, 100));
  });
}

// Open-loop publishing: batches are due at RATE/BATCH per second from t0; a due batch
// with no idle publisher is counted as skipped (the server is saturated).
let idle = [], t0 = 0, due = 0;
const pad = 'x'.repeat(W.size);   // data is padded up to SIZE bytes (bench.js bounds it to 65536)
function publishTick() {
  if (!publishing) return;
  const want = 1 + Math.floor(((nowUs() - t0) / 1e6) * W.rate / W.batch);   // first batch at t0
  while (due < want) {
    due++;
    if (idle.length === 0) { stats.skipped += W.batch; continue; }
    const k = Math.floor(Math.random() * idle.length);
    const c = idle[k]; idle[k] = idle[idle.length - 1]; idle.pop();
    sendBatch(c);
  }
  setTimeout(publishTick, 2);
}

function sendBatch(c) {
  c.busy = true;
  const room = c.rooms[Math.floor(Math.random() * c.rooms.length)];
  const channel = '/chat/' + room, batch = [];
  for (let i = 0; i < W.batch; i++) {
    const data = { p: c.g, s: c.seq++, t: Math.round(nowUs()), x: '' };
    data.x = pad.slice(0, Math.max(0, W.size - JSON.stringify(data).length));
    batch.push({ channel, clientId: c.clientId, id: String(++c.msgId), data });
  }
  stats.batchesSent++;
  post(c, c.pc, batch, W.requestTimeoutMs, (e, msgs) => {
    c.busy = false;
    if (e) { err('publish:' + e); stats.publishFailed += W.batch; }
    else {
      takeDeliveries(c, msgs);
      const ids = new Set(batch.map((m) => m.id));
      let ok = 0;
      for (const m of msgs) if (m && m.channel === channel && ids.has(m.id) && m.successful === true) ok++;
      stats.published += ok;
      stats.publishFailed += W.batch - ok;
      if (ok < W.batch) err('publish:refused');
      stats.expected += ok * W.members[room];
    }
    if (c.ready && !stopping) idle.push(c);
  });
}

// Setup with bounded concurrency so a thousand handshakes do not arrive at once.
function setup(done) {
  let next = 0, active = 0, finished = 0;
  const firstErr = [];
  const launch = () => {
    while (active < W.setupConcurrency && next < clients.length) {
      const c = clients[next++];
      active++;
      handshake(c, (e) => {
        active--; finished++;
        if (e) { stats.setupFailed++; err('setup:' + e); if (firstErr.length < 3) firstErr.push(e); }
        if (finished === clients.length) return done(firstErr);
        launch();
      });
    }
  };
  if (clients.length === 0) return done(firstErr);
  launch();
}

function disconnectAll(done) {
  let pending = 0;
  for (const c of clients) {
    if (WS) {
      if (!c.clientId) { c.ws.destroy(); continue; }
      pending++;
      post(c, null, [{ channel: '/meta/disconnect', clientId: c.clientId, id: String(++c.msgId) }], 2000, () => {
        c.ws.destroy(); if (--pending === 0) done();
      });
      continue;
    }
    c.cc.destroy();
    if (!c.clientId) { c.pc.destroy(); continue; }
    pending++;
    const bye = () => { c.pc.destroy(); if (--pending === 0) done(); };
    if (c.pc.cur) { bye(); continue; }   // a publish still in flight: the session expires on its own
    post(c, c.pc, [{ channel: '/meta/disconnect', clientId: c.clientId, id: String(++c.msgId) }], 2000, bye);
  }
  if (pending === 0) done();
}

function progress() {
  return { published: stats.published, expected: stats.expected, received: stats.received,
    inflight: clients.filter((c) => c.busy).length };
}

parentPort.on('message', (m) => {
  if (m.cmd === 'setup') {
    setup((firstErr) => {
      for (const c of clients) if (c.ready) { idle.push(c); connectLoop(c); }
      parentPort.postMessage({ ev: 'ready', ready: idle.length, failed: stats.setupFailed, firstErr });
    });
  } else if (m.cmd === 'publish') {
    // Reset the measured window: setup deliveries (none expected) do not count.
    t0 = nowUs(); due = 0; publishing = true;
    publishTick();
  } else if (m.cmd === 'stop-publishing') {
    publishing = false;
  } else if (m.cmd === 'progress') {
    parentPort.postMessage({ ev: 'progress', ...progress() });
  } else if (m.cmd === 'finish') {
    publishing = false; stopping = true;
    disconnectAll(() => {
      const l = lat.slice(0, nlat);
      parentPort.postMessage({ ev: 'done', stats, lat: l }, [l.buffer]);
    });
  }
});
