#!/usr/bin/env node
// Closed-loop request rate: CONNECTIONS keep-alive connections each send the next request as soon as
// the previous reply arrives, for DURATION s. --mode hello posts a fixed body (for the libfcgi
// hello-world ceiling); --mode publish gives each connection its own session and publishes one
// 50-byte message per request to a channel nobody subscribes to (non-blocking publish requests/s).
//   node bench/rps.js --url URL [--mode hello|publish] [--connections 64] [--duration 5] [--label L] [--json]
'use strict';
const { Conn } = require('./lib/http');
const { nowUs } = require('./lib/clock');

const o = { url: '', mode: 'hello', connections: 64, duration: 5, label: '', json: false };
const argv = process.argv.slice(2);
function bad(m) { process.stderr.write(`rps.js: ${m}\n`); process.exit(2); }
for (let i = 0; i < argv.length; i++) {
  const m = /^--([a-z]+)$/.exec(argv[i]);
  if (!m || !(m[1] in o)) bad(`unknown argument '${argv[i]}'`);
  if (m[1] === 'json') { o.json = true; continue; }
  if (argv[i + 1] === undefined) bad(`--${m[1]} needs a value`);
  o[m[1]] = argv[++i];
}
if (!['hello', 'publish'].includes(o.mode)) bad(`--mode must be hello or publish, got '${o.mode}'`);
for (const k of ['connections', 'duration']) {
  const n = Number(o[k]);
  if (!Number.isFinite(n) || n <= 0 || n > 100000) bad(`--${k} must be a positive number, got '${o[k]}'`);
  o[k] = n;
}
let url;
try { url = new URL(o.url); } catch (e) { bad(`--url '${o.url}' is not a URL`); }
if (url.protocol !== 'http:') bad('--url must be http://');
const head = `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json;charset=UTF-8`;
const errors = {};
const err = (k) => { errors[k] = (errors[k] || 0) + 1; };

function post(c, body, cb) {
  const h = c.cookie ? `${head}\r\nCookie: ${c.cookie}` : head;
  c.conn.request(h, body, 10000, (e, status, cookies, text) => {
    if (cookies && cookies.length) c.cookie = cookies.map((x) => x.split(';')[0]).join('; ');
    if (e) return cb(e);
    if (status !== 200) return cb('http-' + status);
    let m;
    try { m = JSON.parse(text); } catch (x) { return cb('bad-json'); }
    cb(null, Array.isArray(m) ? m : [m]);
  });
}

function setup(c, cb) {
  if (o.mode === 'hello') { c.body = '[{"channel":"/x","data":{}}]'; return cb(null); }
  post(c, JSON.stringify([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id: '1' }]), (e, msgs) => {
    const r = msgs && msgs.find((m) => m.channel === '/meta/handshake');
    if (e || !r || !r.successful) return cb('handshake:' + (e || (r && r.error) || 'no-reply'));
    c.body = JSON.stringify([{ channel: '/bench/rps', clientId: r.clientId, id: '2', data: { x: 'y'.repeat(42) } }]);
    cb(null);
  });
}

const r = { label: o.label || `rps-${o.mode}`, url: o.url, mode: o.mode, connections: o.connections, duration: o.duration };
let ok = 0, t0 = 0, tEnd = 0, pending = o.connections;
const lat = [];
const conns = Array.from({ length: o.connections }, () => ({ conn: new Conn(url.hostname, Number(url.port) || 80), cookie: '' }));
function loop(c) {
  if (nowUs() >= tEnd) { if (--pending === 0) finish(); return; }
  const t = nowUs();
  post(c, c.body, (e, msgs) => {
    if (e) { err(e); return setTimeout(() => loop(c), 50); }
    if (o.mode === 'publish' && !(msgs[0] && msgs[0].successful === true)) err('refused:' + ((msgs[0] && msgs[0].error) || '?'));
    else { ok++; lat.push(nowUs() - t); }
    loop(c);
  });
}
function finish() {
  const sec = (nowUs() - t0) / 1e6;
  lat.sort((a, b) => a - b);
  const p = (q) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.ceil(q * lat.length) - 1)]) / 1000 : null);
  Object.assign(r, { requests: ok, reqPerSec: Math.round(ok / sec), latencyMs: { p50: p(0.5), p99: p(0.99) }, errors });
  if (!ok) r.error = `no successful request: ${Object.keys(errors).slice(0, 3).join(', ') || '?'}`;
  for (const c of conns) c.conn.destroy();
  process.stderr.write(`${r.label}: ${r.reqPerSec} req/s over ${o.connections} connections, p50 ${r.latencyMs.p50} ms, ` +
    `p99 ${r.latencyMs.p99} ms${Object.keys(errors).length ? ' errors ' + JSON.stringify(errors) : ''}\n`);
  if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
  process.exit(0);
}
let ready = 0, failed = 0;
for (const c of conns) setup(c, (e) => {
  if (e) { err(e); failed++; c.dead = true; }
  if (++ready < conns.length) return;
  if (failed === conns.length) { r.error = `setup failed: ${Object.keys(errors).join(', ')}`; pending = 0; t0 = nowUs(); return finish(); }
  pending = conns.length - failed;
  t0 = nowUs(); tEnd = t0 + o.duration * 1e6;
  for (const x of conns) if (!x.dead) loop(x);
});
setTimeout(() => {
  process.stderr.write('rps.js: watchdog fired\n');
  if (o.json) process.stdout.write(JSON.stringify({ ...r, error: 'watchdog: run did not finish' }) + '\n');
  process.exit(1);
}, (o.duration + 40) * 1000).unref();
