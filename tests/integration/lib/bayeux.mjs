// A small Bayeux-over-HTTP client for the integration tests: one cookie jar per simulated browser,
// a fresh TCP connection per request (aborting one never disturbs another), raw access to status,
// headers and body. Node built-ins only.
import http from 'node:http';
import https from 'node:https';
import assert from 'node:assert/strict';

export const BASE = process.env.BX_URL || 'http://127.0.0.1:8080';
export const FRONT = process.env.BX_FRONT || 'nginx';
export const CFG = {
  timeout: Number(process.env.BX_IT_TIMEOUT || 2000),
  maxInterval: Number(process.env.BX_IT_MAX_INTERVAL || 3000),
  maxMessageSize: Number(process.env.BX_IT_MAX_MESSAGE_SIZE || 65536),
  frontMaxBody: Number(process.env.BX_IT_FRONT_MAX_BODY || 131072),
  multiSessionInterval: 2000,
};
// "Immediate" in bayeux-notes.md §7 is < 1 s; the sanitizer build gets a little more.
export const IMMEDIATE_MS = 1500;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let uniq = 0;
// A channel segment nobody else uses in this run.
export const unique = (p = 'c') => `${p}${process.pid}x${Date.now().toString(36)}x${++uniq}`;

export class Jar {
  constructor() { this.cookies = new Map(); }
  header() { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '); }
  store(setCookie) {
    for (const line of setCookie || []) {
      const [pair] = line.split(';');
      const i = pair.indexOf('=');
      if (i > 0) this.cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
  }
  get(name) { return this.cookies.get(name); }
}

// request(method, path, {body, headers, jar, timeoutMs, onRequest}) → {status, headers, text, json, ms}.
// Rejects on a network error (socket closed, refused); status >= 400 resolves normally.
export function request(method, path, opts = {}) {
  const url = new URL(path, opts.base || BASE);
  const mod = url.protocol === 'https:' ? https : http;
  const headers = { ...(opts.headers || {}) };
  const body = opts.body === undefined ? undefined
    : Buffer.isBuffer(opts.body) ? opts.body
      : Buffer.from(typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body));
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['Content-Type'] = 'application/json;charset=UTF-8';
  }
  if (body !== undefined) headers['Content-Length'] = body.length;
  if (opts.jar && opts.jar.header()) headers.Cookie = opts.jar.header();
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method, headers, agent: false, rejectUnauthorized: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        if (opts.jar) opts.jar.store(res.headers['set-cookie']);
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, ms: Date.now() - t0 });
      });
    });
    req.setTimeout(opts.timeoutMs || CFG.timeout + 15000, () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
    req.on('error', reject);
    if (opts.onRequest) opts.onRequest(req);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export const handshakeMessage = (id = '1', extra = {}) => ({
  channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id, ...extra,
});

// One simulated browser tab: its own cookie jar unless one is shared on purpose.
export class Client {
  // opts.ack: negotiate the ack extension (ext.ack on handshake, the last batch seen on each connect).
  // opts.base: another front URL (e.g. the TLS one) instead of BX_URL.
  constructor(name = 'client', jar = new Jar(), opts = {}) {
    this.name = name; this.jar = jar; this.clientId = undefined; this.n = 0;
    this.ack = !!opts.ack; this.ackBatch = 0; this.base = opts.base;
  }
  nextId() { return String(++this.n + 100); }

  // POST a batch (array or single object) to /cometd/<suffix>.
  post(body, opts = {}) {
    return request('POST', `/cometd/${opts.suffix || ''}`, { base: this.base, ...opts, body, jar: opts.jar === null ? undefined : this.jar });
  }

  async handshake(extra = {}) {
    if (this.ack) extra = { ext: { ack: true }, ...extra };
    const res = await this.post([handshakeMessage(this.nextId(), extra)], { suffix: 'handshake' });
    assert.equal(res.status, 200, `${this.name} handshake: HTTP ${res.status} ${res.text}`);
    const r = res.json[0];
    assert.equal(r.successful, true, `${this.name} handshake: ${res.text}`);
    this.clientId = r.clientId;
    return r;
  }

  connectMessage(extra = {}) {
    const ext = this.ack ? { ext: { ack: this.ackBatch } } : {};
    return { channel: '/meta/connect', clientId: this.clientId, connectionType: 'long-polling', id: this.nextId(), ...ext, ...extra };
  }

  // A /meta/connect; resolves with the whole response (reply + deliveries).
  async connect(extra = {}, opts = {}) {
    const res = await this.post([this.connectMessage(extra)], { suffix: 'connect', ...opts });
    const batch = Array.isArray(res.json) && res.json.find((m) => m.channel === '/meta/connect')?.ext?.ack;
    if (this.ack && typeof batch === 'number') this.ackBatch = batch;
    return res;
  }

  // Handshake + the first (never held) connect: after this the next connect is held.
  async ready() {
    await this.handshake();
    const res = await this.connect({ advice: { timeout: 0 } });
    assert.equal(res.status, 200, `${this.name} first connect: HTTP ${res.status} ${res.text}`);
    assert.equal(connectReply(res).successful, true, `${this.name} first connect: ${res.text}`);
    return this;
  }

  async meta(channel, fields = {}) {
    const msg = { channel, clientId: this.clientId, id: this.nextId(), ...fields };
    const res = await this.post([msg], { suffix: channel.slice(6) });
    assert.equal(res.status, 200, `${this.name} ${channel}: HTTP ${res.status} ${res.text}`);
    return replyTo(res, msg.id);
  }

  subscribe(subscription) { return this.meta('/meta/subscribe', { subscription }); }
  unsubscribe(subscription) { return this.meta('/meta/unsubscribe', { subscription }); }
  disconnect() { return this.meta('/meta/disconnect'); }

  async publish(channel, data, extra = {}) {
    const msg = { channel, data, clientId: this.clientId, id: this.nextId(), ...extra };
    const res = await this.post([msg]);
    assert.equal(res.status, 200, `${this.name} publish ${channel}: HTTP ${res.status} ${res.text}`);
    return replyTo(res, msg.id);
  }
}

// The reply with this id (a publish ack or a meta reply), from a response.
export function replyTo(res, id) {
  assert.ok(Array.isArray(res.json), `response is not a JSON array: ${res.status} ${res.text}`);
  const r = res.json.find((m) => m.id === id && 'successful' in m && !('data' in m));
  assert.ok(r, `no reply with id ${id} in ${res.text}`);
  return r;
}

export function connectReply(res) {
  assert.ok(Array.isArray(res.json), `response is not a JSON array: ${res.status} ${res.text}`);
  const r = res.json.filter((m) => m.channel === '/meta/connect');
  assert.equal(r.length, 1, `expected one /meta/connect reply in ${res.text}`);
  return r[0];
}

// Messages delivered to the client (no `successful`): broadcasts and service deliveries.
export const deliveries = (res) => (Array.isArray(res.json) ? res.json.filter((m) => !('successful' in m)) : []);

// Poll (held connects) until `want` deliveries matching `pred` arrived or `ms` passed.
export async function collect(client, pred, want, ms = CFG.timeout * 3) {
  const got = [];
  const end = Date.now() + ms;
  while (got.length < want && Date.now() < end) {
    const res = await client.connect();
    assert.equal(res.status, 200, `${client.name} connect: HTTP ${res.status} ${res.text}`);
    assert.equal(connectReply(res).successful, true, `${client.name} connect: ${res.text}`);
    got.push(...deliveries(res).filter(pred));
  }
  return got;
}

// The whole path still works for a brand-new pair of clients: handshake, subscribe, publish, delivery.
export async function assertHealthy(label = 'after') {
  const a = await new Client(`healthy-a ${label}`).ready();
  const b = await new Client(`healthy-b ${label}`).ready();
  const ch = `/it/healthy/${unique()}`;
  assert.equal((await a.subscribe(ch)).successful, true);
  const poll = a.connect();
  await sleep(100);
  assert.equal((await b.publish(ch, { ok: label })).successful, true);
  const res = await poll;
  assert.equal(res.status, 200, `${label}: healthy poll HTTP ${res.status} ${res.text}`);
  const d = deliveries(res);
  assert.deepEqual(d.map((m) => m.data), [{ ok: label }], `${label}: healthy delivery ${res.text}`);
  await a.disconnect(); await b.disconnect();
}
