// Faults with real processes: Redis stopped and restarted, a worker SIGKILLed while messages flow,
// a worker SIGTERMed with 100 parked polls. Each test puts the stack back as it found it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CFG, Client, connectReply, deliveries, handshakeMessage, sleep, unique, assertHealthy } from './lib/bayeux.mjs';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { DIR, WORKERS, stopWorker, startWorker, stopRedis, startRedis } from './lib/stack.mjs';

// Keeps a client long-polling until stop(): records every delivery (by seq) and every failed poll.
function poller(c, ch) {
  const st = { seqs: [], failures: [], answers: [], stopped: false, fatal: null };
  st.done = (async () => {
    while (!st.stopped) {
      const t0 = Date.now();
      let res;
      try { res = await c.connect(); } catch (e) { st.failures.push(`${e.message}`); await sleep(50); continue; }
      st.answers.push({ t0, t: Date.now(), status: res.status, res });
      if (res.status !== 200) { st.failures.push(`HTTP ${res.status}`); await sleep(50); continue; }
      const r = connectReply(res);
      if (!r.successful) { st.fatal = `${c.name}: ${res.text}`; return; }
      for (const m of deliveries(res)) if (m.channel === ch) st.seqs.push(m.data.seq);
    }
  })();
  st.stop = async () => { st.stopped = true; await st.done; };
  return st;
}

// Publish with retries: a publish that hit a dying worker is sent again (the subscriber then
// may see it twice, never out of order).
async function publishSure(c, ch, data) {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await c.post([{ channel: ch, clientId: c.clientId, data, id: c.nextId() }]);
      if (res.status === 200 && res.json.some((m) => m.channel === ch && m.successful === true)) return;
    } catch { /* retried below */ }
    await sleep(50);
  }
  throw new Error(`publish ${JSON.stringify(data)} failed 100 times`);
}

const firstOccurrences = (seqs) => seqs.filter((s, i) => seqs.indexOf(s) === i);
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

async function waitAll(pollers, want, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end && !pollers.every((p) => firstOccurrences(p.seqs).length >= want || p.fatal)) await sleep(50);
}

test('Redis stopped: fast retry answers, no crash; after Redis is back clients re-handshake and work', { timeout: 60000 }, async () => {
  const old = await new Client('before-redis-stop').ready();
  await stopRedis();
  let restarted = false;
  try {
    const c = new Client('during-outage');
    const hs = await c.post([handshakeMessage('1')], { timeoutMs: 10000 });
    assert.ok(hs.ms < 5000, `handshake answered after ${hs.ms} ms`);
    assert.ok(hs.status >= 500 || (hs.status === 200 && hs.json?.[0]?.successful === false && hs.json[0].advice?.reconnect === 'retry'),
      `handshake during the outage: HTTP ${hs.status} ${hs.text}`);
    const cn = await old.connect({}, { timeoutMs: 10000 });
    assert.ok(cn.ms < 5000, `connect answered after ${cn.ms} ms`);
    assert.ok(cn.status >= 500 || (cn.status === 200 && connectReply(cn).successful === false && connectReply(cn).advice?.reconnect === 'retry'),
      `connect during the outage: HTTP ${cn.status} ${cn.text}`);
    await startRedis();
    restarted = true;
    // The workers reconnect (and load the function library into the empty Redis) on their own.
    let last;
    const end = Date.now() + 15000;
    while (Date.now() < end) {
      try { await new Client('after-redis').ready(); last = null; break; } catch (e) { last = e; await sleep(250); }
    }
    assert.equal(last, null, `no handshake within 15 s of Redis coming back: ${last?.message}`);
    // The restarted Redis has no sessions: the old client is told to handshake again.
    const gone = await old.connect();
    assert.equal(connectReply(gone).error, '402::session_unknown', gone.text);
    assert.equal(connectReply(gone).advice?.reconnect, 'handshake', gone.text);
    await assertHealthy('redis restart');
  } finally {
    if (!restarted) await startRedis();
  }
});

test('worker SIGKILLed while messages flow: every subscriber gets every message, in order, via the other worker', { timeout: 90000 }, async () => {
  const N = 120;
  const ch = `/kill/${unique()}`;
  const subs = [];
  for (let i = 0; i < 10; i++) {
    const c = await new Client(`sub${i}`).ready();
    assert.equal((await c.subscribe(ch)).successful, true);
    subs.push(c);
  }
  const pub = await new Client('publisher').ready();
  const pollers = subs.map((c) => poller(c, ch));
  // Requests the kill cut off, as nginx logged them: nginx replays an unanswered POST on the other
  // worker (fastcgi_next_upstream non_idempotent), so the clients may see no failure at all.
  const cutOff = () => (readFileSync(`${DIR}/nginx-error.log`, 'utf8').match(
    /(prematurely closed|recv\(\) failed|reset by peer)[^\n]*worker1\.sock/g) || []).length;
  const cut0 = cutOff();
  try {
    await sleep(300); // parked on both workers
    for (let seq = 1; seq <= N; seq++) {
      if (seq === 40) await stopWorker(1, 'KILL');
      await publishSure(pub, ch, { seq });
      await sleep(5);
    }
    await waitAll(pollers, N, CFG.timeout * 4);
  } finally {
    await Promise.all(pollers.map((p) => p.stop()));
    await startWorker(1);
  }
  for (const [i, p] of pollers.entries()) {
    assert.equal(p.fatal, null);
    assert.deepEqual(firstOccurrences(p.seqs), range(1, N), `sub${i} got ${JSON.stringify(p.seqs)}`);
    // Repeats are only resends of what was in flight: never a jump backwards past a newer message.
    for (let k = 1; k < p.seqs.length; k++) {
      assert.ok(p.seqs[k] > p.seqs[k - 1] || firstOccurrences(p.seqs.slice(0, k)).includes(p.seqs[k]),
        `sub${i} out of order at ${k}: ${JSON.stringify(p.seqs)}`);
    }
  }
  const failed = pollers.reduce((n, p) => n + p.failures.length, 0);
  const cut = cutOff() - cut0;
  assert.ok(failed + cut >= 1, 'no poll failed and nginx logged no cut-off request: the kill hit nothing in flight, so the test proved nothing');
  await assertHealthy('SIGKILL');
});

test('worker SIGTERMed with 100 parked polls: its polls are answered at once with reconnect:retry, nothing is lost', { timeout: 90000 }, async () => {
  const ch = `/term/${unique()}`;
  const subs = [];
  for (let i = 0; i < 100; i += 20) {
    subs.push(...(await Promise.all(Array.from({ length: 20 }, async (_, k) => {
      const c = await new Client(`t${i + k}`).ready();
      assert.equal((await c.subscribe(ch)).successful, true);
      return c;
    }))));
  }
  const pub = await new Client('publisher').ready();
  const pollers = subs.map((c) => poller(c, ch));
  let tTerm, tExit;
  try {
    await sleep(500); // every poll parked
    await publishSure(pub, ch, { seq: 1 });
    await sleep(300); // delivered; the re-polls park again
    tTerm = Date.now();
    await stopWorker(1, 'TERM');
    tExit = Date.now();
    assert.ok(tExit - tTerm < 3000, `the worker took ${tExit - tTerm} ms to exit`);
    // The clients whose polls the worker answered re-poll through the other worker: nothing is lost.
    await publishSure(pub, ch, { seq: 2 });
    await publishSure(pub, ch, { seq: 3 });
    await waitAll(pollers, 3, CFG.timeout * 4);
  } finally {
    await Promise.all(pollers.map((p) => p.stop()));
    await startWorker(1);
  }
  for (const p of pollers) {
    assert.equal(p.fatal, null);
    assert.deepEqual(firstOccurrences(p.seqs), [1, 2, 3], JSON.stringify(p.seqs));
  }
  // Polls parked before SIGTERM and answered while the worker shut down: its shutdown answers (a
  // timeout would come about CFG.timeout after the poll started).
  const early = pollers.flatMap((p) => p.answers).filter((a) => a.t0 < tTerm && a.t >= tTerm && a.t <= tExit + 200
    && a.t - a.t0 < CFG.timeout - 300);
  for (const a of early) {
    assert.equal(a.status, 200, `a poll answered during the shutdown: HTTP ${a.status} ${a.res.text}`);
    assert.equal(connectReply(a.res).successful, true, a.res.text);
  }
  const retry = early.filter((a) => connectReply(a.res).advice?.reconnect === 'retry');
  const around = pollers.flatMap((p) => p.answers).filter((a) => a.t0 < tTerm && a.t >= tTerm)
    .map((a) => `+${a.t - tTerm}ms/${a.t - a.t0}ms held: ${a.status} ${a.res.text.slice(0, 120)}`);
  if (retry.length < 20) console.log(`worker exit took ${tExit - tTerm} ms; answers after SIGTERM:\n${around.slice(0, 30).join('\n')}`);
  assert.ok(retry.length >= 20, `only ${retry.length} parked polls were answered with reconnect:retry at SIGTERM ` +
    `(${early.length} answered early)`);
  await assertHealthy('SIGTERM');
});

// One FastCGI record (version 1): type, request id 1, content, no padding.
function fcgiRecord(type, content) {
  const h = Buffer.alloc(8);
  h[0] = 1; h[1] = type; h.writeUInt16BE(1, 2); h.writeUInt16BE(content.length, 4);
  return Buffer.concat([h, content]);
}
function fcgiParams(env) {
  const parts = Object.entries(env).map(([k, v]) => {
    const kb = Buffer.from(k); const vb = Buffer.from(v);
    assert.ok(kb.length < 128 && vb.length < 128);
    return Buffer.concat([Buffer.from([kb.length, vb.length]), kb, vb]);
  });
  return Buffer.concat(parts);
}

test('FastCGI connections straight to the workers that stall mid-body block no one', { timeout: 60000 }, async () => {
  // A web server that streams request bodies (or a broken one) can leave a worker waiting for the rest
  // of a body; the worker must keep serving everybody else meanwhile.
  const begin = fcgiRecord(1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])); // FCGI_RESPONDER, no keep-conn
  const params = fcgiRecord(4, fcgiParams({ REQUEST_METHOD: 'POST', CONTENT_LENGTH: '4000',
    CONTENT_TYPE: 'application/json', REQUEST_URI: '/cometd/handshake', SCRIPT_NAME: '/cometd' }));
  const stalled = [];
  for (let w = 1; w <= WORKERS; w++) {
    for (let k = 0; k < 2; k++) { // as many as a worker has accept threads (acceptThreads = 2)
      const s = net.connect(`${DIR}/worker${w}.sock`);
      s.on('error', () => {});
      s.write(Buffer.concat([begin, params, fcgiRecord(4, Buffer.alloc(0)), fcgiRecord(5, Buffer.from('[{"channel":"/meta/hand'))]));
      stalled.push(s);
    }
  }
  try {
    await sleep(300);
    // Well before the worker's own read timeout would free a stalled request.
    const t0 = Date.now();
    await Promise.race([assertHealthy('stalled FastCGI bodies'),
      sleep(3000).then(() => { throw new Error('a round trip took over 3 s while FastCGI bodies stalled'); })]);
    assert.ok(Date.now() - t0 < 3000);
  } finally {
    stalled.forEach((s) => s.destroy());
  }
  await assertHealthy('after the stalled FastCGI connections closed');
});
