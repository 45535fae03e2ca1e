#!/usr/bin/env node
// Closed-loop request rate: CONNECTIONS keep-alive connections each send the next request as soon as
// the previous reply arrives, for DURATION s. --mode hello posts a fixed body (for the libfcgi
// hello-world ceiling); --mode publish gives each connection its own session and publishes one
// 50-byte message per request to a channel nobody subscribes to (non-blocking publish requests/s).
//   node bench/rps.js --url URL [--mode hello|publish] [--connections 64] [--duration 5] [--label L] [--json]
//        [--engine auto|wrk|node] [--threads 2]   (wrk: one session per wrk thread, bench/lib/wrk-post.lua)
'use strict';
const { BayeuxPoster } = require('./lib/http');
const { parseFlags } = require('./lib/cli');
const { nowUs } = require('./lib/clock');
const { spawn, spawnSync } = require('child_process');
const path = require('path');

const o = parseFlags('rps.js', process.argv.slice(2),
  { url: '', mode: 'hello', connections: 64, duration: 5, label: '', engine: 'auto', threads: 2, json: false },
  { connections: [1, 100000], duration: [0.1, 3600], threads: [1, 64] });
if (!['hello', 'publish'].includes(o.mode)) { process.stderr.write(`rps.js: --mode must be hello or publish, got '${o.mode}'\n`); process.exit(2); }
if (!['auto', 'wrk', 'node'].includes(o.engine)) { process.stderr.write(`rps.js: --engine must be auto, wrk or node\n`); process.exit(2); }
// wrk (C) when installed: this Node loop tops out near the libfcgi hello world itself on 2 cores.
const hasWrk = spawnSync('wrk', ['--version']).error === undefined;
if (o.engine === 'wrk' && !hasWrk) { process.stderr.write('rps.js: wrk is not installed (make deps)\n'); process.exit(2); }
const engine = o.engine === 'auto' ? (hasWrk ? 'wrk' : 'node') : o.engine;
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

const r = { label: o.label || `rps-${o.mode}`, url: o.url, mode: o.mode, engine, connections: o.connections, duration: o.duration };
let ok = 0, t0 = 0, tEnd = 0, pending = o.connections;
const lat = [];
const conns = engine === 'wrk' ? [] : Array.from({ length: o.connections }, () => ({ conn: poster.conn(), cookie: '' }));
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
  report();
}
function report() {
  process.stderr.write(`${r.label}: ${r.reqPerSec} req/s over ${o.connections} connections (${engine}), p50 ${r.latencyMs.p50} ms, ` +
    `p99 ${r.latencyMs.p99} ms${Object.keys(errors).length ? ' errors ' + JSON.stringify(errors) : ''}${r.error ? ' ERROR ' + r.error : ''}\n`);
  if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
  process.exit(0);
}

// wrk: sessions (publish mode) are made here, one per wrk thread; wrk sends the requests.
function runWrk() {
  const sess = Array.from({ length: o.threads }, () => ({ conn: poster.conn(), cookie: '' }));
  let n = 0;
  for (const c of sess) setup(c, (e) => {
    if (e) err(e);
    if (++n < sess.length) return;
    for (const x of sess) x.conn.destroy();
    if (Object.keys(errors).length) { r.error = `setup failed: ${Object.keys(errors).join(', ')}`; r.reqPerSec = 0; r.latencyMs = {}; return report(); }
    const env = { ...process.env };
    sess.forEach((x, i) => { env[`WRK_BODY_${i + 1}`] = x.body; env[`WRK_COOKIE_${i + 1}`] = x.cookie; });
    const w = spawn('wrk', ['-t', String(o.threads), '-c', String(Math.max(o.connections, o.threads)), '-d', `${o.duration}s`,
      '--timeout', '10s', '-s', path.join(__dirname, 'lib', 'wrk-post.lua'), o.url], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    w.stdout.on('data', (d) => { out += d; });
    w.stderr.on('data', (d) => { out += d; });
    w.on('close', () => {
      const line = out.split('\n').reverse().find((l) => l.startsWith('{'));
      let j;
      try { j = JSON.parse(line); } catch (e) { r.error = `wrk gave no result: ${out.trim().split('\n').pop()}`; r.reqPerSec = 0; r.latencyMs = {}; return report(); }
      for (const k of ['connectErrors', 'readErrors', 'writeErrors', 'timeouts', 'fails']) if (j[k]) errors[k] = j[k];
      const good = j.requests - j.fails;
      Object.assign(r, { requests: good, reqPerSec: Math.round(good / (j.durationUs / 1e6)), latencyMs: { p50: j.p50Us / 1000, p99: j.p99Us / 1000 }, errors });
      const nerr = j.fails + j.connectErrors + j.readErrors + j.writeErrors + j.timeouts;
      if (!good) r.error = 'no successful request';
      else if (nerr > good / 100) r.error = `${nerr} failed requests (${Object.keys(errors).join(', ')})`;
      report();
    });
  });
}

let ready = 0, failed = 0;
if (engine === 'wrk') runWrk();
else for (const c of conns) setup(c, (e) => {
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
