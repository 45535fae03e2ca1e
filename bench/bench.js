#!/usr/bin/env node
// bayeux-bench: CometD's reference chat workload over long-polling or WebSocket against one Bayeux server.
// CLIENTS clients, each subscribed to ROOMS_PER_CLIENT of ROOMS rooms /chat/<n>; publishers send
// batches of BATCH messages of SIZE bytes at RATE msg/s for DURATION s. Every message carries its
// publisher, that publisher's sequence number and its send time; every delivery is timestamped.
// Prints a summary on stderr and, with --json, one JSON object on stdout. Exit 0 even when the
// server failed (the result then has "error"), 2 on bad arguments.
'use strict';
const { Worker } = require('worker_threads');
const { fork, spawn } = require('child_process');
const fs = require('fs');
const readline = require('readline');
const path = require('path');
const os = require('os');
const { nowUs } = require('./lib/clock');
const S = require('./lib/sample');

const OPTS = {
  url:               { env: 'URL', def: '', help: 'Bayeux endpoint, http://host:port/path' },
  transport:         { env: 'TRANSPORT', def: 'long-polling', help: 'long-polling or websocket (--engine node on Node 20: node --experimental-websocket)' },
  clients:           { env: 'CLIENTS', def: 1000, int: [1, 100000] },
  rooms:             { env: 'ROOMS', def: 100, int: [1, 100000] },
  'rooms-per-client': { env: 'ROOMS_PER_CLIENT', def: 10, int: [1, 1000] },
  rate:              { env: 'RATE', def: 1000, int: [1, 10000000], help: 'published msg/s offered' },
  duration:          { env: 'DURATION', def: 10, num: [0.5, 3600], help: 'seconds of publishing' },
  batch:             { env: 'BATCH', def: 10, int: [1, 1000] },
  size:              { env: 'SIZE', def: 50, int: [40, 65536], help: 'bytes of each message data (JSON)' },
  threads:           { env: 'THREADS', def: Math.min(2, os.cpus().length), int: [1, 64] },
  'setup-concurrency': { env: 'SETUP_CONCURRENCY', def: 32, int: [1, 10000] },
  'connect-timeout': { env: 'CONNECT_TIMEOUT', def: 45, num: [1, 3600], help: 's, HTTP timeout of a held connect' },
  'request-timeout': { env: 'REQUEST_TIMEOUT', def: 10, num: [0.1, 3600], help: 's, other requests' },
  'setup-timeout':   { env: 'SETUP_TIMEOUT', def: 0, num: [0, 3600], help: 's, 0 = 20 + clients/50' },
  drain:             { env: 'DRAIN', def: 10, num: [0, 3600], help: 's, max wait for deliveries after publishing' },
  'redis-host':      { env: 'BENCH_REDIS_HOST', def: '127.0.0.1' },
  'redis-port':      { env: 'BENCH_REDIS_PORT', def: 0, int: [0, 65535], help: 'server redis, for commandstats' },
  pids:              { env: 'BENCH_PIDS', def: '', help: 'comma list of server pids (CPU, RSS)' },
  label:             { env: 'LABEL', def: '' },
  seed:              { env: 'SEED', def: 1, int: [0, 2 ** 31 - 1] },
  json:              { flag: true, help: 'print the result as one JSON line on stdout' },
  self:              { flag: true, help: 'run against a trivial in-memory responder (long-polling or websocket): the generator ceiling' },
  engine:            { env: 'ENGINE', def: 'node', help: 'node (worker threads) or c (bench/cgen.c: one epoll loop)' },
  cgen:              { env: 'CGEN', def: path.join(__dirname, '..', 'build', 'bench', 'bx-cgen'), help: 'the C engine binary (make)' },
};

function usage(msg) {
  const lines = Object.entries(OPTS).map(([k, o]) =>
    `  --${k}${o.flag ? '' : ' V'}${o.env ? ` (env ${o.env}, default ${o.def === '' ? 'none' : o.def})` : ''}${o.help ? ': ' + o.help : ''}`);
  if (msg) process.stderr.write(`bench.js: ${msg} (--help lists the options)\n`);
  else process.stderr.write('usage: node bench/bench.js --url URL [options]\n' + lines.join('\n') + '\n');
  process.exit(msg ? 2 : 0);
}

function parseArgs(argv) {
  const o = {};
  for (const [k, d] of Object.entries(OPTS)) o[k] = d.flag ? false : (d.env && process.env[d.env] !== undefined && process.env[d.env] !== '' ? process.env[d.env] : d.def);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') usage();
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m || !OPTS[m[1]]) usage(`unknown argument '${a}'`);
    if (OPTS[m[1]].flag) { o[m[1]] = true; continue; }
    const v = m[2] !== undefined ? m[2] : argv[++i];
    if (v === undefined) usage(`--${m[1]} needs a value`);
    o[m[1]] = v;
  }
  for (const [k, d] of Object.entries(OPTS)) {
    const range = d.int || d.num;
    if (!range) continue;
    const s = String(o[k]).trim();
    const n = Number(s);
    if (s === '' || !Number.isFinite(n) || (d.int && !Number.isInteger(n))) usage(`--${k} (${d.env}) must be ${d.int ? 'an integer' : 'a number'}, got '${o[k]}'`);
    if (n < range[0] || n > range[1]) usage(`--${k} (${d.env}) must be within ${range[0]}..${range[1]}, got ${n}`);
    o[k] = n;
  }
  if (!['long-polling', 'websocket'].includes(o.transport)) usage(`--transport (TRANSPORT) must be long-polling or websocket, got '${o.transport}'`);
  if (!['node', 'c'].includes(o.engine)) usage(`--engine (ENGINE) must be node or c, got '${o.engine}'`);
  if (o.engine === 'c') {
    try { fs.accessSync(o.cgen, fs.constants.X_OK); } catch (e) { usage(`--engine c: ${o.cgen} is not built (make, or --cgen PATH)`); }
  }
  if (o.transport === 'websocket' && o.engine === 'node' && typeof WebSocket !== 'function') usage('--transport websocket needs a WebSocket client: run node with --experimental-websocket (Node 20)');
  if (o['rooms-per-client'] > o.rooms) usage(`ROOMS_PER_CLIENT (${o['rooms-per-client']}) cannot exceed ROOMS (${o.rooms})`);
  if (!o.self) {
    if (!o.url) usage('--url (URL) is required unless --self');
    let u;
    try { u = new URL(o.url); } catch (e) { usage(`--url '${o.url}' is not a URL`); }
    if (u.protocol !== 'http:') usage(`--url must be http:// (long-polling), got '${u.protocol}'`);
  }
  o.pidList = String(o.pids).split(',').filter(Boolean).map((p) => {
    if (!/^\d+$/.test(p)) usage(`--pids: '${p}' is not a pid`);
    return Number(p);
  });
  // Sequence numbers must stay below SEQ_SPAN per publisher (2^20): a generous bound.
  if (o.rate * o.duration > o.clients * (1 << 18)) usage('RATE × DURATION too large for CLIENTS publishers');
  o.threads = Math.min(o.threads, o.clients);
  return o;
}

// Deterministic room choice: mulberry32 seeded by SEED.
function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6D2B79F5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

function assignRooms(o) {
  const r = rng(o.seed), rooms = [], members = new Array(o.rooms).fill(0);
  for (let c = 0; c < o.clients; c++) {
    const mine = new Set();
    while (mine.size < o['rooms-per-client']) mine.add(Math.floor(r() * o.rooms));
    const list = [...mine];
    for (const x of list) members[x]++;
    rooms.push(list);
  }
  return { rooms, members };
}

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ms = (us) => (us === null ? null : Math.round(us) / 1000);

async function startResponder() {
  const child = fork(path.join(__dirname, 'lib', 'responder.js'), ['0'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('responder did not start in 5 s')), 5000);
    child.stdout.on('data', (b) => { const m = /ready (\d+)/.exec(String(b)); if (m) { clearTimeout(t); resolve(Number(m[1])); } });
    child.on('exit', (code) => reject(new Error('responder exited ' + code)));
  });
  return { child, url: `http://127.0.0.1:${port}/cometd` };
}

class Threads {
  constructor(o, plan) {
    this.workers = [];
    for (let t = 0; t < o.threads; t++) {
      const idx = [];
      for (let c = t; c < o.clients; c += o.threads) idx.push(c);
      this.workers.push(new Worker(path.join(__dirname, 'lib', 'worker.js'), { workerData: {
        url: o.url, transport: o.transport, clients: idx, rooms: idx.map((c) => plan.rooms[c]), members: plan.members,
        rate: o.rate / o.threads, batch: o.batch, size: o.size, setupConcurrency: Math.ceil(o['setup-concurrency'] / o.threads),
        connectTimeoutMs: o['connect-timeout'] * 1000, requestTimeoutMs: o['request-timeout'] * 1000 } }));
    }
    for (const w of this.workers) w.on('error', (e) => { this.crash = e; });
  }
  // Send cmd to every thread and wait for event ev from each, at most timeoutMs.
  all(cmd, ev, timeoutMs) {
    return Promise.all(this.workers.map((w) => new Promise((resolve, reject) => {
      const t = setTimeout(() => { w.off('message', on); reject(new Error(`generator thread: no '${ev}' within ${timeoutMs / 1000} s`)); }, timeoutMs);
      const on = (m) => { if (m.ev === ev) { clearTimeout(t); w.off('message', on); resolve(m); } };
      w.on('message', on);
      w.postMessage({ cmd });
    })));
  }
  send(cmd) { for (const w of this.workers) w.postMessage({ cmd }); }
  async progress() {
    const ps = await this.all('progress', 'progress', 5000);
    return ps.reduce((a, p) => ({ published: a.published + p.published, expected: a.expected + p.expected,
      received: a.received + p.received, inflight: a.inflight + p.inflight }), { published: 0, expected: 0, received: 0, inflight: 0 });
  }
  terminate() { return Promise.all(this.workers.map((w) => w.terminate())); }
}

async function run(o) {
  const result = { label: o.label || (o.self ? 'responder' : o.url), url: o.url, transport: o.transport, clients: o.clients, rooms: o.rooms,
    roomsPerClient: o['rooms-per-client'], batch: o.batch, size: o.size, offered: o.rate, duration: o.duration,
    threads: o.threads, engine: o.engine, time: new Date().toISOString() };
  if (o.engine === 'c') return runEngineC(o, result);
  const plan = assignRooms(o);
  result.fanout = plan.members.reduce((a, b) => a + b * b, 0) / (o.clients * o['rooms-per-client']);   // mean members of a publisher's room
  let responder = null, threads = null;
  try {
    if (o.self) { responder = await startResponder(); o.url = result.url = responder.url; o.pidList = [responder.child.pid]; }
    threads = new Threads(o, plan);
    const setupMs = (o['setup-timeout'] || (20 + o.clients / 50)) * 1000;
    const tSetup = Date.now();
    const ready = await threads.all('setup', 'ready', setupMs);
    result.setupSec = (Date.now() - tSetup) / 1000;
    const nReady = ready.reduce((a, r) => a + r.ready, 0);
    const firstErr = ready.flatMap((r) => r.firstErr);
    result.ready = nReady;
    if (nReady === 0) throw new Error(`no client could handshake+subscribe: ${firstErr.join(', ') || 'unknown'}`);
    if (nReady < o.clients * 0.95) throw new Error(`only ${nReady}/${o.clients} clients set up: ${firstErr.join(', ')}`);
    await sleep(500);

    const gen0 = process.cpuUsage(), proc0 = S.procSnapshot(o.pidList), redis0 = S.redisCommandStats(o['redis-host'], o['redis-port']);
    const t0 = nowUs();
    let rssMax = S.rssKb(proc0);
    threads.send('publish');
    let lastRecv = 0, tLastRecv = t0, p = null;
    const pubEnd = t0 + o.duration * 1e6;
    while (nowUs() < pubEnd) {
      await sleep(Math.min(500, Math.max(1, (pubEnd - nowUs()) / 1000)));
      rssMax = Math.max(rssMax, S.rssKb(S.procSnapshot(o.pidList)));
      if (threads.crash) throw threads.crash;
    }
    threads.send('stop-publishing');
    const tPubEnd = nowUs();
    // Drain: until every expected delivery arrived, or nothing arrived for 2 s, or DRAIN s.
    const drainEnd = tPubEnd + o.drain * 1e6;
    for (;;) {
      p = await threads.progress();
      const t = nowUs();
      if (p.received !== lastRecv) { lastRecv = p.received; tLastRecv = t; }
      if (p.inflight === 0 && p.received >= p.expected) break;
      if (t > drainEnd || (p.inflight === 0 && t - tLastRecv > 2e6)) break;
      await sleep(100);
    }
    const tEnd = nowUs();
    const proc1 = S.procSnapshot(o.pidList), redis1 = S.redisCommandStats(o['redis-host'], o['redis-port']);
    const gen1 = process.cpuUsage(gen0);
    rssMax = Math.max(rssMax, S.rssKb(proc1));
    const done = await threads.all('finish', 'done', 15000);

    const st = { published: 0, publishFailed: 0, skipped: 0, expected: 0, received: 0, dup: 0, ooo: 0, foreign: 0,
      connects: 0, rehandshakes: 0, batchesSent: 0 };
    const errors = {};
    let n = 0;
    for (const d of done) {
      for (const k of Object.keys(st)) st[k] += d.stats[k];
      for (const [k, v] of Object.entries(d.stats.errors)) errors[k] = (errors[k] || 0) + v;
      n += d.lat.length;
    }
    const lat = new Float64Array(n);
    let off = 0;
    for (const d of done) { lat.set(d.lat, off); off += d.lat.length; }
    lat.sort();
    const pubSec = (tPubEnd - t0) / 1e6, recvSec = Math.max(pubSec, (tLastRecv - t0) / 1e6), wall = (tEnd - t0) / 1e6;
    Object.assign(result, {
      published: st.published, publishedPerSec: Math.round(st.published / pubSec),
      publishFailed: st.publishFailed, skipped: st.skipped,
      expected: st.expected, delivered: st.received, deliveredPerSec: Math.round(st.received / recvSec),
      lost: Math.max(0, st.expected - st.received), lostPct: st.expected ? +(100 * Math.max(0, st.expected - st.received) / st.expected).toFixed(3) : 0,
      unexpected: Math.max(0, st.received - st.expected), duplicated: st.dup, outOfOrder: st.ooo, foreign: st.foreign,
      connectsPerSec: Math.round(st.connects / wall), rehandshakes: st.rehandshakes,
      latencyMs: { min: ms(lat.length ? lat[0] : null), p50: ms(pct(lat, 0.5)), p99: ms(pct(lat, 0.99)),
        p999: ms(pct(lat, 0.999)), max: ms(lat.length ? lat[lat.length - 1] : null) },
      errors,
      generatorCpuPct: Math.round((gen1.user + gen1.system) / 1e4 / wall),
      generatorUsPerDelivery: st.received ? +((gen1.user + gen1.system) / st.received).toFixed(2) : null,
    });
    serverFigures(result, o, { proc0, proc1, redis0, redis1, rssMax, wall, published: st.published });
    if (proc1.missing.length) result.error = `server process(es) ${proc1.missing.join(',')} gone during the run`;
    else if (st.published === 0) result.error = `nothing published: ${Object.keys(errors).slice(0, 3).join(', ') || 'no reply'}`;
    else if (st.received === 0) result.error = 'nothing delivered';
  } catch (e) {
    result.error = e.message;
  } finally {
    if (threads) await threads.terminate();
    if (responder) responder.child.kill('SIGTERM');
  }
  return result;
}

// Server CPU/RSS (from /proc, pids sampled at the window's ends) and Redis commands per publish.
function serverFigures(result, o, w) {
  Object.assign(result, {
    serverCpuPct: Math.round(S.cpuPercent(w.proc0, w.proc1, w.wall)),
    serverCpuByProcess: S.cpuByName(w.proc0, w.proc1, w.wall),
    serverRssMaxKb: w.rssMax,
    serverPidsGone: w.proc1.missing,
  });
  const cmds = S.commandDelta(w.redis0, w.redis1);
  if (cmds) {
    const total = Object.values(cmds).reduce((a, b) => a + b, 0);
    result.redisCommands = total;
    result.redisCommandsPerPublish = w.published ? +(total / w.published).toFixed(2) : null;
    // Commands run inside functions count too; FCALLs are the round trips a server pays.
    const fcalls = (cmds.fcall || 0) + (cmds.fcall_ro || 0) + (cmds.evalsha || 0) + (cmds.eval || 0);
    result.redisFcallsPerPublish = w.published ? +(fcalls / w.published).toFixed(2) : null;
    result.redisTop = Object.fromEntries(Object.entries(cmds).sort((a, b) => b[1] - a[1]).slice(0, 8));
  } else if (o['redis-port']) {
    result.redisCommandsPerPublish = null;
    result.redisNote = 'redis did not answer INFO';
  }
}

// --engine c: bench/cgen.c runs the same workload and counting on one epoll loop (no Node hop on
// either end of a measured latency); this process only samples the server around the window the
// generator marks ("@t0", "@end" lines) and merges its figures into the generator's JSON result.
let cChild = null;
async function runEngineC(o, result) {
  let responder = null;
  try {
    if (o.self) { responder = await startResponder(); o.url = result.url = responder.url; o.pidList = [responder.child.pid]; }
    const args = ['--json', '--marks', '--url', o.url, '--transport', o.transport, '--label', result.label, '--clients', o.clients, '--rooms', o.rooms,
      '--rooms-per-client', o['rooms-per-client'], '--rate', o.rate, '--duration', o.duration, '--batch', o.batch,
      '--size', o.size, '--setup-concurrency', o['setup-concurrency'], '--connect-timeout', o['connect-timeout'],
      '--request-timeout', o['request-timeout'], '--setup-timeout', o['setup-timeout'], '--drain', o.drain, '--seed', o.seed];
    const child = cChild = spawn(o.cgen, args.map(String), { stdio: ['ignore', 'pipe', 'inherit'] });
    let w = null, t0 = 0, timer = null, final = null, spawnErr = null;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === '@t0') {
        w = { proc0: S.procSnapshot(o.pidList), redis0: S.redisCommandStats(o['redis-host'], o['redis-port']) };
        w.rssMax = S.rssKb(w.proc0);
        t0 = nowUs();
        timer = setInterval(() => { w.rssMax = Math.max(w.rssMax, S.rssKb(S.procSnapshot(o.pidList))); }, 500);
      } else if (line === '@end' && w) {
        clearInterval(timer);
        Object.assign(w, { proc1: S.procSnapshot(o.pidList), redis1: S.redisCommandStats(o['redis-host'], o['redis-port']),
          wall: (nowUs() - t0) / 1e6 });
        w.rssMax = Math.max(w.rssMax, S.rssKb(w.proc1));
      } else if (line.startsWith('{')) {
        try { final = JSON.parse(line); } catch (e) { final = { error: 'bx-cgen printed unparsable JSON' }; }
      }
    });
    const [code, sig] = await new Promise((resolve) => {
      child.on('error', (e) => { spawnErr = e.message; resolve([null, null]); });
      child.on('close', (c, s) => resolve([c, s]));
    });
    clearInterval(timer);
    cChild = null;
    if (!final) throw new Error(spawnErr ? `bx-cgen: ${spawnErr}` : `bx-cgen exited (${code === null ? sig : code}) without a result`);
    const keep = { label: result.label, url: result.url, time: result.time };
    Object.assign(result, final, keep);
    if (w && w.proc1) {
      serverFigures(result, o, { ...w, published: result.published || 0 });
      if (w.proc1.missing.length) result.error = `server process(es) ${w.proc1.missing.join(',')} gone during the run`;
    }
  } catch (e) {
    result.error = e.message;
  } finally {
    if (responder) responder.child.kill('SIGTERM');
  }
  return result;
}

function summary(r) {
  if (r.error && r.delivered === undefined) return `${r.label}: ERROR ${r.error}\n`;
  const l = r.latencyMs;
  return `${r.label}: offered ${r.offered}/s published ${r.publishedPerSec}/s (failed ${r.publishFailed}, skipped ${r.skipped}) ` +
    `delivered ${r.deliveredPerSec}/s of expected ${r.expected}: lost ${r.lost} (${r.lostPct}%) dup ${r.duplicated} ooo ${r.outOfOrder}\n` +
    `  latency ms min ${l.min} p50 ${l.p50} p99 ${l.p99} p99.9 ${l.p999} max ${l.max}; connects ${r.connectsPerSec}/s` +
    `; server cpu ${r.serverCpuPct}% ${JSON.stringify(r.serverCpuByProcess)} rss ${Math.round(r.serverRssMaxKb / 1024)} MiB; generator cpu ${r.generatorCpuPct}% ` +
    `(${r.generatorUsPerDelivery} µs/delivery)` + (r.redisCommandsPerPublish != null ? `; redis cmds/publish ${r.redisCommandsPerPublish}` : '') +
    (Object.keys(r.errors).length ? `\n  errors ${JSON.stringify(r.errors)}` : '') + (r.error ? `\n  ERROR ${r.error}` : '') + '\n';
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  // A run never outlives its worst case: setup + publishing + drain + finishing, plus slack.
  const limit = ((o['setup-timeout'] || (20 + o.clients / 50)) + o.duration + o.drain + 40) * 1000;
  const watchdog = setTimeout(() => {
    if (cChild) cChild.kill('SIGKILL');
    const r = { label: o.label || o.url, offered: o.rate, error: `run exceeded ${limit / 1000} s (watchdog)` };
    process.stderr.write(summary(r));
    if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(1);
  }, limit);
  const r = await run(o);
  clearTimeout(watchdog);
  process.stderr.write(summary(r));
  if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
  if (o.self && r.generatorUsPerDelivery) {
    // At light load the fixed per-run cost dominates: this is a ceiling only for the top-rate run.
    process.stderr.write(`generator cost at this load: ${r.generatorUsPerDelivery} µs of generator CPU per delivery ≈ ` +
      `${Math.round(1e6 / r.generatorUsPerDelivery)} deliveries/s per core (${os.cpus().length} cores here, shared with the server)\n`);
  }
  process.exit(0);
}

main().catch((e) => { process.stderr.write(`bench.js: ${e.stack || e}\n`); process.exit(1); });
