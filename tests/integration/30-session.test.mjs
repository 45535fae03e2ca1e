// bayeux-notes.md §7 scenarios 22–24, session expiry after interval + maxInterval, client abort while parked,
// connects gathered into one broker call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CFG, FRONT, IMMEDIATE_MS, Client, Jar, connectReply, deliveries, sleep, unique, assertHealthy } from './lib/bayeux.mjs';
import { workerLogLines } from './lib/stack.mjs';

const run = promisify(execFile);

test('#22 disconnect releases the held connect with reconnect:none; the clientId is then unknown', async () => {
  const s1 = await new Client('s1').ready();
  const poll = s1.connect();
  await sleep(300);
  const d = await s1.disconnect();
  assert.equal(d.successful, true);
  const res = await poll;
  assert.equal(res.status, 200, res.text);
  assert.ok(res.ms < CFG.timeout - 500, `the held connect returned after ${res.ms} ms, not on the disconnect`);
  assert.equal(connectReply(res).advice?.reconnect, 'none', res.text);
  const after = await s1.connect();
  assert.equal(connectReply(after).error, '402::session_unknown', after.text);
});

test('#23 a second connect of the same session supersedes the held one (HTTP 500), and is held', async () => {
  const s1 = await new Client('s1').ready();
  const a = s1.connect();
  await sleep(300);
  const b = s1.connect();
  const ra = await a;
  assert.equal(ra.status, 500, `superseded connect: ${ra.status} ${ra.text}`);
  assert.ok(ra.ms < CFG.timeout, `superseded connect answered after ${ra.ms} ms`);
  const rb = await b;
  assert.equal(rb.status, 200, rb.text);
  assert.equal(connectReply(rb).successful, true, rb.text);
  assert.ok(rb.ms >= CFG.timeout - 200, `the newer connect was not held (${rb.ms} ms)`);
});

test('#24 two tabs of one browser: the second long poll gets multiple-clients advice at once', async () => {
  const jar = new Jar();
  const t1 = new Client('tab1', jar);
  const t2 = new Client('tab2', jar);
  await t1.ready();
  await t2.ready();
  assert.ok(jar.get('BAYEUX_BROWSER'), 'the tabs share one BAYEUX_BROWSER cookie');
  const p1 = t1.connect();
  await sleep(300);
  const r2 = await t2.connect();
  assert.equal(r2.status, 200, r2.text);
  assert.ok(r2.ms < IMMEDIATE_MS, `the second tab's poll was held ${r2.ms} ms`);
  const c2 = connectReply(r2);
  assert.equal(c2.successful, true, r2.text);
  assert.equal(c2.advice?.['multiple-clients'], true, r2.text);
  assert.equal(c2.advice?.reconnect, 'retry', r2.text);
  assert.equal(c2.advice?.interval, CFG.multiSessionInterval, r2.text);
  const r1 = await p1;
  assert.equal(connectReply(r1).successful, true, r1.text);
  assert.equal(connectReply(r1).advice?.['multiple-clients'], undefined, 'the first tab is held normally');
});

test('session expiry: no connect for interval + maxInterval → 402 with handshake advice', async () => {
  const idle = await new Client('idle').ready();
  const alive = await new Client('alive').ready();
  // Control: a session that connects every second (well within maxInterval) is kept meanwhile.
  const waitMs = CFG.maxInterval + 2000; // interval (0) + maxInterval, plus a sweep period and slack
  for (let t = 0; t < waitMs; t += 1000) {
    await sleep(1000);
    const ok = await alive.connect({ advice: { timeout: 0 } });
    assert.equal(connectReply(ok).successful, true, `within maxInterval: ${ok.text}`);
  }
  const res = await idle.connect();
  assert.ok(res.ms < IMMEDIATE_MS, `took ${res.ms} ms`);
  const r = connectReply(res);
  assert.equal(r.error, '402::session_unknown', `after ${waitMs} ms idle: ${res.text}`);
  assert.equal(r.advice?.reconnect, 'handshake', res.text);
  const again = await alive.connect({ advice: { timeout: 0 } });
  assert.equal(connectReply(again).successful, true, again.text);
});

test('client abort while parked: others unaffected, the queue is kept for the next poll', async () => {
  // nginx closes the FastCGI request when the browser goes away, so the worker keeps the queue.
  // lighttpd does not tell the backend: the worker answers into the void, and only the ack
  // extension (CometD's answer to lost replies) gets the message back, so the client uses it there.
  const s1 = await new Client('aborter', undefined, { ack: FRONT === 'lighttpd' }).ready();
  const s3 = await new Client('bystander').ready();
  const pub = await new Client('pub').ready();
  const ch1 = `/chat/${unique()}`;
  const ch3 = `/chat/${unique()}`;
  await s1.subscribe(ch1);
  await s3.subscribe(ch3);
  let req;
  const aborted = s1.connect({}, { onRequest: (r) => { req = r; } }).then(() => 'answered', (e) => e.message);
  const p3 = s3.connect();
  await sleep(300);
  req.destroy(new Error('client went away'));
  assert.equal(await aborted, 'client went away');
  await sleep(300); // the web server notices and closes the FastCGI request
  assert.equal((await pub.publish(ch1, 'kept')).successful, true);
  assert.equal((await pub.publish(ch3, 'for bystander')).successful, true);
  const r3 = await p3;
  assert.deepEqual(deliveries(r3).map((m) => m.data), ['for bystander'], r3.text);
  const r1 = await s1.connect();
  assert.equal(r1.status, 200, r1.text);
  assert.deepEqual(deliveries(r1).map((m) => m.data), ['kept'], `the queued message after the abort: ${r1.text}`);
  assert.ok(r1.ms < IMMEDIATE_MS, `the re-poll waited ${r1.ms} ms for a queued message`);
  await assertHealthy('client abort');
});

test('connects that arrive while the broker is busy go together in one bx_connect_batch, each answered as its own', async () => {
  const ch = `/gather/${unique('g')}`;
  const clients = await Promise.all(Array.from({ length: 16 }, (_, i) => new Client(`gather${i}`).ready()));
  for (const c of clients) assert.equal((await c.subscribe(ch)).successful, true);
  const gathered = () => workerLogLines(/bx_connect_batch sent with (\d+) connects/)
    .filter((l) => Number(/with (\d+) connects/.exec(l)[1]) >= 2).length;
  const before = gathered();
  // Redis holds every write call for 600 ms: each worker's first connect waits in it, the others
  // arrive meanwhile and must be gathered into one call once it is answered.
  await run('redis-cli', ['-p', process.env.BX_STACK_REDIS_PORT, 'CLIENT', 'PAUSE', '600', 'WRITE']);
  const polls = clients.map((c) => c.connect());
  await sleep(1000);
  const pub = await new Client('gather-pub').ready();
  assert.equal((await pub.publish(ch, { n: 1 })).successful, true);
  for (const [i, res] of (await Promise.all(polls)).entries()) {
    assert.equal(res.status, 200, `gather${i}: HTTP ${res.status} ${res.text}`);
    assert.equal(connectReply(res).successful, true, `gather${i}: ${res.text}`);
    assert.deepEqual(deliveries(res).map((m) => m.data), [{ n: 1 }], `gather${i}: ${res.text}`);
  }
  assert.ok(gathered() > before, 'no bx_connect_batch carried more than one connect');
});
