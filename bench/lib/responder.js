// A trivial in-memory Bayeux long-polling server (one process, no validation, no
// Redis) used only to measure the generator's own ceiling: `bench.js --self`.
// Each publish is serialized once and its text appended to every subscriber's queue.
// Usage: node responder.js PORT   (prints "ready" when listening)
// BENCH_FAULTS="drop=P,dup=P,swap=P": per recipient, lose / duplicate / queue out of order with
// probability P — bench/selftest.sh uses it to check that the generators (bench.js, floor.c) count what they claim.
// BENCH_STRICT_HTTP=1: chunked bodies in 7-byte chunks, and a BAYEUX_BROWSER cookie set at handshake that
// every later request must send back (CometD's session-hijack check) — exercises a client's HTTP parser and jar.
'use strict';
const http = require('http');
const crypto = require('crypto');

const port = parseInt(process.argv[2] || '0', 10);
const sessions = new Map();   // clientId → { queue: [json text], held: res|null, timer }
const channels = new Map();   // channel → Set(clientId)
const HOLD_MS = 20000;
const faults = { drop: 0, dup: 0, swap: 0 };
const strict = process.env.BENCH_STRICT_HTTP === '1';
for (const kv of (process.env.BENCH_FAULTS || '').split(',').filter(Boolean)) {
  const [k, v] = kv.split('=');
  if (!(k in faults) || !(Number(v) >= 0 && Number(v) <= 1)) { console.error(`responder: bad BENCH_FAULTS item '${kv}'`); process.exit(2); }
  faults[k] = Number(v);
}

function reply(res, parts) {
  const body = '[' + parts.join(',') + ']';
  if (strict) {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    for (let i = 0; i < body.length; i += 7) res.write(body.slice(i, i + 7));
    return res.end();
  }
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function flush(s, connectReply) {
  const res = s.held; s.held = null;
  if (s.timer) { clearTimeout(s.timer); s.timer = null; }
  const parts = s.queue; s.queue = [];
  parts.push(connectReply);
  reply(res, parts);
}

function connectReply(m) {
  return JSON.stringify({ channel: '/meta/connect', id: m.id, successful: true, advice: { reconnect: 'retry', interval: 0, timeout: HOLD_MS } });
}

function handle(msgs, res, cookie) {
  const out = [];
  for (const m of msgs) {
    let s = m.clientId && sessions.get(m.clientId);
    if (s && strict && !cookie.split(/;\s*/).includes('BAYEUX_BROWSER=' + s.browser)) s = null;
    if (m.channel === '/meta/handshake') {
      const id = crypto.randomBytes(12).toString('hex');
      const browser = crypto.randomBytes(8).toString('hex');
      sessions.set(id, { queue: [], held: null, timer: null, browser });
      if (strict) res.setHeader('Set-Cookie', [`BAYEUX_BROWSER=${browser}; Path=/; HttpOnly`, 'other=1; Path=/']);
      out.push(JSON.stringify({ channel: m.channel, id: m.id, successful: true, clientId: id, version: '1.0',
        supportedConnectionTypes: ['long-polling'], advice: { reconnect: 'retry', interval: 0, timeout: HOLD_MS } }));
    } else if (!s) {
      out.push(JSON.stringify({ channel: m.channel, id: m.id, successful: false, error: '402::Unknown client',
        advice: { reconnect: 'handshake' } }));
    } else if (m.channel === '/meta/subscribe') {
      if (!channels.has(m.subscription)) channels.set(m.subscription, new Set());
      channels.get(m.subscription).add(m.clientId);
      out.push(JSON.stringify({ channel: m.channel, id: m.id, successful: true, subscription: m.subscription }));
    } else if (m.channel === '/meta/connect') {
      const immediate = (m.advice && m.advice.timeout === 0) || s.queue.length > 0;
      if (immediate || s.held) { out.push(...s.queue, connectReply(m)); s.queue = []; continue; }
      s.held = res; s.heldReply = connectReply(m);
      s.timer = setTimeout(() => { s.timer = null; if (s.held) flush(s, s.heldReply); }, HOLD_MS);
      return;   // a connect is always last in its batch here
    } else if (m.channel === '/meta/disconnect') {
      sessions.delete(m.clientId);
      out.push(JSON.stringify({ channel: m.channel, id: m.id, successful: true }));
    } else {
      const text = JSON.stringify({ channel: m.channel, data: m.data });
      for (const cid of channels.get(m.channel) || []) {
        const t = sessions.get(cid);
        if (!t) continue;
        if (faults.drop && Math.random() < faults.drop) continue;
        // swap: before the queued message, or, with none queued (single publishes, as floor.c sends),
        // held back until this recipient's next message from the same publisher.
        if (faults.swap && !t.deferred && Math.random() < faults.swap) {
          if (t.queue.length) t.queue.splice(t.queue.length - 1, 0, text);
          else { t.deferred = { from: m.clientId, text }; continue; }
        } else t.queue.push(text);
        if (t.deferred && t.deferred.from === m.clientId && t.queue[t.queue.length - 1] === text) {
          t.queue.push(t.deferred.text); t.deferred = null;
        }
        if (faults.dup && Math.random() < faults.dup) t.queue.push(text);
        if (t.held && !t.wake) { t.wake = true; setImmediate(() => { t.wake = false; if (t.held) flush(t, t.heldReply); }); }
      }
      out.push(JSON.stringify({ channel: m.channel, id: m.id, successful: true }));
    }
  }
  reply(res, out);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (b) => chunks.push(b));
  req.on('end', () => {
    let msgs;
    try { msgs = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch (e) { res.writeHead(400); return res.end(); }
    handle(Array.isArray(msgs) ? msgs : [msgs], res, req.headers.cookie || '');
  });
});
server.keepAliveTimeout = 120000;
server.listen(port, '127.0.0.1', () => { console.log('ready ' + server.address().port); });
process.on('SIGTERM', () => process.exit(0));
