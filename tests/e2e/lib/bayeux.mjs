// Official CometD JavaScript client (npm `cometd`) in Node via `cometd-nodejs-client`,
// with promise helpers for the tests.
//
// Two pieces of plumbing stand in for what a browser gives each tab, nothing more:
// - a cookie jar per simulated client (the adapter shares one jar per process, which would
//   make every client look like the same browser and trip maxSessionsPerBrowser);
// - jsonpSend() for callback-polling: the official transport builds the URL, splits
//   batches by maxURILength and parses the reply; only the DOM <script> injection is
//   replaced by an HTTP GET that checks what a browser would execute: `name(<json>)`.
import http from 'node:http';
import { adapt } from 'cometd-nodejs-client';
import { XMLHttpRequest as NodeXHR } from 'cometd-nodejs-client/src/XMLHttpRequest.js';
import {
  CometD, LongPollingTransport, CallbackPollingTransport, WebSocketTransport,
  AckExtension, TimeSyncExtension, TimeStampExtension, ReloadExtension, BinaryExtension,
} from 'cometd';

adapt();

const processJar = {};
class JarXHR extends NodeXHR {
  constructor() {
    const opts = {};
    super(opts);
    this._opts = opts;
  }
  send(data) {
    // The adapter reads and writes options.globalCookies; point it at this client's jar.
    this._opts.globalCookies = (this.context && this.context.cookieStore) || processJar;
    return super.send(data);
  }
}
window.XMLHttpRequest = JarXHR;

// Shared sessionStorage stand-in (ReloadExtension); tests create one per "tab".
export class MemoryStorage {
  constructor() { this.m = new Map(); }
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; }
  setItem(k, v) { this.m.set(k, String(v)); }
  removeItem(k) { this.m.delete(k); }
}

export const SERVER_URL = process.env.BX_E2E_URL || 'http://127.0.0.1:8080/cometd';
export const TRANSPORTS = (process.env.BX_E2E_TRANSPORTS || 'long-polling,callback-polling')
  .split(',').map(s => s.trim()).filter(Boolean);
// Transports a test proxy can stand in front of (it speaks HTTP, not WebSocket frames).
export const isHttp = t => t !== 'websocket';
export const MAX_INTERVAL = parseInt(process.env.BX_E2E_MAX_INTERVAL || '10000', 10);

function cookieHeader(jar, host) {
  const j = jar[host];
  return j ? Object.values(j).join('; ') : '';
}
function storeSetCookies(jar, host, setCookies) {
  for (const sc of setCookies || []) {
    const nv = sc.split(';')[0].trim();
    const eq = nv.indexOf('=');
    if (eq > 0) (jar[host] ||= {})[nv.slice(0, eq)] = nv;
  }
}

let jsonpSeq = 0;
const JSONP_RE = /^\s*(?:\/\*\*\/\s*)?([A-Za-z0-9._-]+)\(([\s\S]*)\)\s*;?\s*$/;

// What a <script src> would do, over plain HTTP with this client's cookies.
export function jsonpGet(url, jar, callbackName) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers = {};
    const ck = cookieHeader(jar, u.hostname);
    if (ck) headers.Cookie = ck;
    const req = http.get(u, { headers, agent: false }, res => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', c => { body += c; });
      res.on('end', () => {
        storeSetCookies(jar, u.hostname, res.headers['set-cookie']);
        if (res.statusCode !== 200) return reject(new Error('jsonp HTTP ' + res.statusCode));
        const ct = res.headers['content-type'] || '';
        if (!/javascript/i.test(ct)) return reject(new Error('jsonp content-type ' + ct));
        const m = JSONP_RE.exec(body);
        if (!m || m[1] !== callbackName) return reject(new Error('jsonp body is not ' + callbackName + '(...): ' + body.slice(0, 200)));
        try { resolve(JSON.parse(m[2])); } catch (e) { reject(new Error('jsonp payload not JSON: ' + e.message)); }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function installJsonp(transport, jar) {
  transport.jsonpSend = function (packet) {
    const name = '_cometd_jsonp_' + (jsonpSeq++);
    let url = packet.url;
    url += url.indexOf('?') < 0 ? '?' : '&';
    url += 'jsonp=' + name + '&message=' + encodeURIComponent(packet.body);
    jsonpGet(url, jar, name).then(
      msgs => packet.onSuccess(msgs),
      err => packet.onError('jsonp error', err));
  };
}

let clientSeq = 0;
// A CometD client limited to one transport, with its own cookie jar (a "browser").
// opts: url, transport, jar, ack, timesync, timestamp, binary, reload (a MemoryStorage), logLevel,
//       backoffIncrement, maxBackoff (CometD client options)
export function newClient(opts = {}) {
  const transport = opts.transport || 'long-polling';
  const jar = opts.jar || {};
  const cometd = new CometD('e2e-' + (clientSeq++));
  cometd.unregisterTransports();
  let t;
  if (transport === 'long-polling') {
    t = new LongPollingTransport();
  } else if (transport === 'callback-polling') {
    t = new CallbackPollingTransport();
    installJsonp(t, jar);
  } else if (transport === 'websocket') {
    // The adapter's window.WebSocket (npm ws); the session is bound to the connection, no cookie.
    t = new WebSocketTransport();
  } else {
    throw new Error('unknown transport ' + transport);
  }
  t.context = { cookieStore: jar };
  cometd.registerTransport(transport, t);
  if (opts.ack) cometd.registerExtension('ack', new AckExtension());
  if (opts.timesync) cometd.registerExtension('timesync', new TimeSyncExtension());
  if (opts.timestamp) cometd.registerExtension('timestamp', new TimeStampExtension());
  if (opts.binary) cometd.registerExtension('binary', new BinaryExtension());
  if (opts.reload) {
    // ReloadExtension talks to window.sessionStorage; each test passes its own "tab storage".
    window.sessionStorage = opts.reload;
    cometd.registerExtension('reload', new ReloadExtension());
  }
  const config = { url: opts.url || SERVER_URL, logLevel: opts.logLevel || process.env.BX_E2E_LOG || 'warn',
    maxNetworkDelay: opts.maxNetworkDelay || 10000 };
  for (const k of ['backoffIncrement', 'maxBackoff']) if (opts[k] !== undefined) config[k] = opts[k];
  cometd.configure(config);
  cometd.e2eJar = jar;
  return cometd;
}

export function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error('timeout after ' + ms + ' ms: ' + (typeof what === 'function' ? what() : what))), ms);
    }),
  ]);
}

// Handshake and wait for the first successful /meta/connect (the client is "connected").
export function handshake(cometd, props) {
  const connected = new Promise((resolve, reject) => {
    const l = cometd.addListener('/meta/connect', m => {
      if (m.successful) { cometd.removeListener(l); resolve(m); }
    });
    const u = cometd.addListener('/meta/unsuccessful', m => {
      if (m.channel === '/meta/handshake') { cometd.removeListener(u); reject(new Error('handshake failed: ' + JSON.stringify(m))); }
    });
  });
  const hs = new Promise((resolve, reject) => {
    cometd.handshake(props || {}, reply => {
      if (reply.successful) resolve(reply);
      else reject(new Error('handshake failed: ' + JSON.stringify(reply)));
    });
  });
  return withTimeout(Promise.all([hs, connected]).then(([h]) => h), 15000, 'handshake+connect');
}

export function subscribe(cometd, channel, onMessage, props) {
  return withTimeout(new Promise((resolve, reject) => {
    const sub = cometd.subscribe(channel, onMessage || (() => {}), props || {}, reply => {
      if (reply.successful) resolve(sub);
      else reject(Object.assign(new Error('subscribe ' + channel + ' failed: ' + JSON.stringify(reply)), { reply }));
    });
  }), 10000, 'subscribe ' + channel);
}

export function unsubscribe(cometd, sub) {
  return withTimeout(new Promise((resolve, reject) => {
    cometd.unsubscribe(sub, {}, reply => {
      if (reply.successful) resolve(reply);
      else reject(new Error('unsubscribe failed: ' + JSON.stringify(reply)));
    });
  }), 10000, 'unsubscribe');
}

export function publish(cometd, channel, data, props) {
  return withTimeout(new Promise((resolve, reject) => {
    cometd.publish(channel, data, props || {}, reply => {
      if (reply.successful) resolve(reply);
      else reject(Object.assign(new Error('publish ' + channel + ' failed: ' + JSON.stringify(reply)), { reply }));
    });
  }), 10000, 'publish ' + channel);
}

export function remoteCall(cometd, target, data, timeout = 5000) {
  return withTimeout(new Promise(resolve => {
    cometd.remoteCall(target, data, timeout, reply => resolve(reply));
  }), timeout + 5000, 'remoteCall ' + target);
}

export function disconnect(cometd) {
  if (cometd.isDisconnected()) return Promise.resolve(null);
  return withTimeout(new Promise(resolve => {
    cometd.disconnect(reply => resolve(reply));
  }), 10000, 'disconnect');
}

// Collects messages from a listener; waitFor(n) resolves once n arrived.
export class Inbox {
  constructor(name) { this.name = name; this.msgs = []; this.waiters = []; this.fn = m => this.push(m); }
  push(m) {
    this.msgs.push(m);
    this.waiters = this.waiters.filter(w => { if (this.msgs.length >= w.n) { w.resolve(this.msgs); return false; } return true; });
  }
  data() { return this.msgs.map(m => m.data); }
  waitFor(n, ms = 10000) {
    if (this.msgs.length >= n) return Promise.resolve(this.msgs);
    return withTimeout(new Promise(resolve => this.waiters.push({ n, resolve })), ms,
      () => `${this.name}: ${n} messages (have ${this.msgs.length})`);
  }
}

export const sleep = ms => new Promise(r => setTimeout(r, ms));

// A channel segment no other test (or earlier run) uses.
let uniqSeq = 0;
export const uniq = () => `${process.pid}x${Date.now().toString(36)}x${uniqSeq++}`;

export async function waitUntil(pred, ms, what) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error('timeout waiting for ' + what);
    await sleep(50);
  }
}

// Every client a test made, disconnected at the end even when the test failed.
export class Clients {
  constructor() { this.list = []; }
  add(c) { this.list.push(c); return c; }
  make(opts) { return this.add(newClient(opts)); }
  async closeAll() {
    await Promise.allSettled(this.list.map(c => disconnect(c).catch(() => {})));
    this.list = [];
  }
}

// A raw Bayeux POST with a client's cookies (for checks the client API does not expose).
export async function rawPost(url, jar, messages) {
  const u = new URL(url);
  const headers = { 'Content-Type': 'application/json' };
  const ck = cookieHeader(jar, u.hostname);
  if (ck) headers.Cookie = ck;
  const res = await fetch(u, { method: 'POST', headers, body: JSON.stringify(messages) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* left null: caller checks */ }
  return { status: res.status, headers: res.headers, text, json };
}
