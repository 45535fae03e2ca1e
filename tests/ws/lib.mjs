// Helpers for the WebSocket suite: a Bayeux client over npm ws (a message inbox with waits), a raw
// socket for frames the ws library refuses to send, and a small long-polling client (fetch).
import WebSocket from 'ws';
import net from 'node:net';
import assert from 'node:assert/strict';

export const BASE = process.env.BX_URL || 'http://127.0.0.1:8080';
export const WS_URL = `${BASE.replace(/^http/, 'ws')}/cometd`;
export const CFG = {
  timeout: Number(process.env.BX_WS_TIMEOUT || 2000),
  maxInterval: Number(process.env.BX_WS_MAX_INTERVAL || 4000),
  maxMessageSize: Number(process.env.BX_WS_MAX_MESSAGE_SIZE || 65536),
  idleTimeout: Number(process.env.BX_WS_IDLE_TIMEOUT || 5000),
  maxOutbound: Number(process.env.BX_WS_MAX_OUTBOUND || 262144),
};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let uniq = 0;
export const unique = (p = 'c') => `${p}${process.pid}x${Date.now().toString(36)}x${++uniq}`;
let nextId = 0;

export class Client {
  static async open(url = WS_URL, opts = {}) {
    const c = new Client(new WebSocket(url, opts));
    await new Promise((resolve, reject) => {
      c.ws.once('open', resolve);
      c.ws.once('error', reject);
      c.ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return c;
  }

  constructor(ws) {
    this.ws = ws;
    this.frames = [];  // every frame received, parsed
    this.inbox = [];   // messages not consumed yet
    this.waiters = new Set();
    this.closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('error', () => {});
    ws.on('upgrade', (res) => { this.setCookie = res.headers['set-cookie'] || []; });
    ws.on('message', (data, binary) => {
      assert.equal(binary, false, 'the server sends text frames only');
      const arr = JSON.parse(data.toString());
      assert.ok(Array.isArray(arr), 'every frame is a JSON array');
      this.frames.push(arr);
      this.inbox.push(...arr);
      // like a real client: a new /meta/connect as soon as the held one is answered
      if (this.autoConnect && arr.some((m) => m.channel === '/meta/connect' && m.successful)) this.connect();
      for (const w of [...this.waiters]) w();
    });
  }

  send(msgs) { this.ws.send(JSON.stringify(msgs)); }

  // The first message (consumed) for which pred holds, within ms; rejects on timeout.
  next(pred, ms = 3000, what = 'message') {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.inbox.findIndex(pred);
        if (i < 0) return false;
        const [m] = this.inbox.splice(i, 1);
        this.waiters.delete(check);
        clearTimeout(t);
        resolve(m);
        return true;
      };
      const t = setTimeout(() => { this.waiters.delete(check); reject(new Error(`no ${what} within ${ms} ms`)); }, ms);
      if (!check()) this.waiters.add(check);
    });
  }

  // Send one message with a fresh id; resolve with its reply.
  async call(msg, ms = 3000) {
    const id = String(++nextId);
    this.send([{ ...msg, id }]);
    return this.next((m) => m.id === id && m.channel === msg.channel, ms, `reply to ${msg.channel}`);
  }

  async handshake(ext) {
    const r = await this.call({ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'],
      ...(ext ? { ext } : {}) });
    assert.equal(r.successful, true, JSON.stringify(r));
    this.clientId = r.clientId;
    return r;
  }

  // The first connect (answered at once, as CometD), so later ones are held.
  async connectFirst() {
    const r = await this.call({ channel: '/meta/connect', clientId: this.clientId, connectionType: 'websocket',
      advice: { timeout: 0 } });
    assert.equal(r.successful, true, JSON.stringify(r));
    return r;
  }

  // Send a held connect; returns its id (wait for the reply with replyTo).
  connect() {
    const id = String(++nextId);
    this.send([{ channel: '/meta/connect', clientId: this.clientId, connectionType: 'websocket', id }]);
    return id;
  }

  replyTo(id, ms = CFG.timeout + 2000) {
    return this.next((m) => m.id === id, ms, `reply ${id}`);
  }

  async subscribe(channel) {
    const r = await this.call({ channel: '/meta/subscribe', clientId: this.clientId, subscription: channel });
    assert.equal(r.successful, true, JSON.stringify(r));
  }

  async publish(channel, data) {
    const r = await this.call({ channel, clientId: this.clientId, data });
    assert.equal(r.successful, true, JSON.stringify(r));
  }

  close() { this.ws.close(); return this.closed; }
}

// A fresh session that is connected and ready to receive on channel (a held connect in flight).
export async function subscriber(channel) {
  const c = await Client.open();
  await c.handshake();
  await c.connectFirst();
  await c.subscribe(channel);
  c.pending = c.connect();
  return c;
}

// A health check: a new connection publishes and receives its own message.
export async function roundTrip() {
  const ch = `/health/${unique()}`;
  const c = await subscriber(ch);
  await c.publish(ch, { ok: 1 });
  await c.next((m) => m.channel === ch && m.data && m.data.ok === 1, 3000, 'own delivery');
  await c.close();
}

// ---- raw socket through nginx ----------------------------------------------------------------

// Opens TCP to nginx, sends an upgrade with the given headers; resolves {sock, status, head, rest}.
export function rawUpgrade(headers = {}, path = '/cometd') {
  const url = new URL(BASE);
  const h = { Host: url.host, Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers };
  const lines = [`GET ${path} HTTP/1.1`];
  for (const [k, v] of Object.entries(h)) if (v !== undefined) lines.push(`${k}: ${v}`);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(url.port), url.hostname, () => sock.write(`${lines.join('\r\n')}\r\n\r\n`));
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const head = buf.subarray(0, end).toString();
      resolve({ sock, status: Number(head.split(' ')[1]), head, rest: buf.subarray(end + 4) });
    };
    sock.on('data', onData);
    sock.on('error', reject);
    setTimeout(() => reject(new Error('no upgrade response within 3 s')), 3000);
  });
}

// A raw TCP connection straight to bayeux-ws (no nginx): {sock, got} where got is everything read so far
// (latin1), until the caller removes the 'data' listener.
export async function direct() {
  const [host, port] = process.env.BX_WS_DIRECT.split(':');
  const sock = net.connect(Number(port), host);
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  const d = { sock, got: '' };
  sock.on('data', (b) => { d.got += b.toString('latin1'); });
  return d;
}

// The request head of a plain upgrade (extra header lines end with \r\n).
export const upgradeHead = (extra = '') => 'GET /cometd HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n' +
  `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

// One client frame (masked unless mask=false).
export function frame(opcode, payload, { mask = true, fin = true, rsv1 = false } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = p.length;
  const hdr = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) hdr.push(m | len);
  else if (len < 65536) hdr.push(m | 126, len >> 8, len & 255);
  else { hdr.push(m | 127, 0, 0, 0, 0); const b = Buffer.alloc(4); b.writeUInt32BE(len); hdr.push(...b); }
  if (!mask) return Buffer.concat([Buffer.from(hdr), p]);
  const key = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(p.map((x, i) => x ^ key[i % 4]));
  return Buffer.concat([Buffer.from(hdr), key, body]);
}

// Reads server frames from a raw upgraded socket until a close frame; resolves its code (null on EOF
// without one).
export function closeCode(sock, rest = Buffer.alloc(0), ms = 3000) {
  return new Promise((resolve, reject) => {
    let buf = rest;
    const t = setTimeout(() => reject(new Error(`no close frame within ${ms} ms`)), ms);
    const scan = () => {
      while (buf.length >= 2) {
        let len = buf[1] & 127, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const op = buf[0] & 15;
        if (op === 8) { clearTimeout(t); resolve(len >= 2 ? buf.readUInt16BE(off) : 1005); return; }
        buf = buf.subarray(off + len);
      }
    };
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); scan(); });
    sock.on('end', () => { clearTimeout(t); resolve(null); });
    sock.on('close', () => { clearTimeout(t); resolve(null); });
    scan();
  });
}

// ---- long-polling client -------------------------------------------------------------------------

export class LongPoll {
  constructor() { this.cookie = ''; }
  async post(msgs, ms = 10000) {
    const r = await fetch(`${BASE}/cometd`, {
      method: 'POST', signal: AbortSignal.timeout(ms),
      headers: { 'Content-Type': 'application/json;charset=UTF-8', ...(this.cookie ? { Cookie: this.cookie } : {}) },
      body: JSON.stringify(msgs),
    });
    const sc = r.headers.getSetCookie();
    if (sc.length) this.cookie = sc[0].split(';')[0];
    assert.equal(r.status, 200);
    return r.json();
  }
  async handshake() {
    const [r] = await this.post([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'] }]);
    assert.equal(r.successful, true, JSON.stringify(r));
    this.clientId = r.clientId;
    return r;
  }
  connect(advice) {
    return this.post([{ channel: '/meta/connect', clientId: this.clientId, connectionType: 'long-polling',
      ...(advice ? { advice } : {}) }]);
  }
}
