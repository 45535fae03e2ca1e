// A trivial in-memory Bayeux long-polling server (one process, no validation, no
// Redis) used only to measure the generator's own ceiling: `bench.js --self`.
// Each publish is serialized once and its text appended to every subscriber's queue.
// Usage: node responder.js PORT   (prints "ready" when listening)
// BENCH_FAULTS="drop=P,dup=P,swap=P": per recipient, lose / duplicate / queue out of order with
// probability P — bench/selftest.sh uses it to check that the generators (bench.js, floor.c) count what they claim.
// BENCH_STRICT_HTTP=1: chunked bodies in 7-byte chunks, and a BAYEUX_BROWSER cookie set at handshake that
// every later request must send back (CometD's session-hijack check) — exercises a client's HTTP parser and jar.
// WebSocket (an upgrade on any path, RFC 6455 framing below, no extensions): the same sessions and faults;
// a connect is held as over HTTP, while deliveries go out as frames of their own as soon as they are queued
// (as CometD's websocket transport does), so a client must take them apart from replies.
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
  if (res.isWs) return res.send(body);
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
    if (s && res.isWs) s.ws = res;   // where its deliveries go from now on
    if (s && strict && !res.isWs && !cookie.split(/;\s*/).includes('BAYEUX_BROWSER=' + s.browser)) s = null;
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
        if (t.ws && !t.wake) {   // a frame of deliveries; the held connect stays held
          t.wake = true;
          setImmediate(() => { t.wake = false; if (t.ws && t.queue.length) { const q = t.queue; t.queue = []; reply(t.ws, q); } });
        } else if (t.held && !t.wake) { t.wake = true; setImmediate(() => { t.wake = false; if (t.held) flush(t, t.heldReply); }); }
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

// ---- WebSocket: the opening handshake and frames (text, close, ping; client frames must be masked) ----
function wsFrame(op, payload) {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | op, n]) : n < 65536 ? Buffer.from([0x80 | op, 126, n >> 8, n & 255])
    : Buffer.concat([Buffer.from([0x80 | op, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  return Buffer.concat([head, payload]);
}

server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  if (!key || !/websocket/i.test(req.headers.upgrade || '')) { socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'); return; }
  const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.setNoDelay(true);
  const conn = { isWs: true, setHeader() {}, send(body) { if (!socket.destroyed) socket.write(wsFrame(1, Buffer.from(body))); } };
  let buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0), parts = [], closed = false;
  const forget = () => { closed = true; conn.send = () => {}; for (const s of sessions.values()) if (s.ws === conn) s.ws = null; };
  const bye = () => { forget(); socket.destroy(); };
  socket.on('data', (d) => {
    if (closed) return;
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15, fin = buf[0] & 128, masked = buf[1] & 128;
      let n = buf[1] & 127, off = 2;
      if (n === 126) { if (buf.length < 4) return; n = buf.readUInt16BE(2); off = 4; }
      else if (n === 127) { if (buf.length < 10) return; n = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (!masked || n > 64 * 1024 * 1024) return bye();   // RFC 6455: a client masks every frame
      if (buf.length < off + 4 + n) return;
      const mask = buf.subarray(off, off + 4), payload = Buffer.from(buf.subarray(off + 4, off + 4 + n));
      for (let i = 0; i < n; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + n);
      if (op === 8) { forget(); socket.end(wsFrame(8, payload.subarray(0, 2))); return; }
      if (op === 9) { if (!socket.destroyed) socket.write(wsFrame(10, payload)); continue; }
      if (op !== 0 && op !== 1) continue;   // pong, binary: nothing here
      parts.push(payload);
      if (!fin) continue;
      const text = Buffer.concat(parts).toString('utf8');
      parts = [];
      let msgs;
      try { msgs = JSON.parse(text); } catch (e) { return bye(); }
      handle(Array.isArray(msgs) ? msgs : [msgs], conn, '');
    }
  });
  socket.on('error', bye);
  socket.on('close', forget);
});
server.listen(port, '127.0.0.1', () => { console.log('ready ' + server.address().port); });
process.on('SIGTERM', () => process.exit(0));
