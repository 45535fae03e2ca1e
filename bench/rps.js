#!/usr/bin/env node
// Closed-loop request rate: CONNECTIONS keep-alive connections each send the next request as soon as
// the previous reply arrives, for DURATION s. --mode hello posts a fixed body (for the libfcgi
// hello-world ceiling); --mode publish gives each connection its own session and publishes one
// 50-byte message per request to a channel nobody subscribes to (non-blocking publish requests/s).
//   node bench/rps.js --url URL [--mode hello|publish] [--connections 64] [--duration 5] [--label L] [--json]
'use strict';
const { BayeuxPoster } = require('./lib/http');
const { parseFlags } = require('./lib/cli');
const { nowUs } = require('./lib/clock');

const o = parseFlags('rps.js', process.argv.slice(2),
  { url: '', mode: 'hello', connections: 64, duration: 5, label: '', json: false },
  { connections: [1, 100000], duration: [0.1, 3600] });
if (!['hello', 'publish'].includes(o.mode)) { process.stderr.write(`rps.js: --mode must be hello or publish, got '${o.mode}'\n`); process.exit(2); }
const url = o.parsedUrl;
const poster = new BayeuxPoster(url);
const errors = {};
const err = (k) => { errors[k] = (errors[k] || 0) + 1; };

function post(c, body, cb) { poster.post(c, c.conn, body, 10000, cb); }

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
const conns = Array.from({ length: o.connections }, () => ({ conn: poster.conn(), cookie: '' }));
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
  const nerr = Object.values(errors).reduce((a, b) => a + b, 0);
  if (!ok) r.error = `no successful request: ${Object.keys(errors).slice(0, 3).join(', ') || '?'}`;
  else if (nerr > ok / 100) r.error = `${nerr} failed requests (${Object.keys(errors).slice(0, 3).join(', ')})`;
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
