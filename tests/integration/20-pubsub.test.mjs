// bayeux-notes.md §7 scenarios 11–21: subscribe, publish, wildcards, service and meta channels, validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, connectReply, deliveries, replyTo, sleep, unique } from './lib/bayeux.mjs';

// Everything queued for c right now: a connect that the client asks not to hold.
async function drainNow(c) {
  await sleep(200); // let a publish that was just acked fan out
  const res = await c.connect({ advice: { timeout: 0 } });
  assert.equal(res.status, 200, res.text);
  assert.equal(connectReply(res).successful, true, res.text);
  return res.json.filter((m) => m.channel !== '/meta/connect'); // deliveries and remote-call results
}

// Publish and return [ack, deliveries piggy-backed on the publish response].
async function publishRaw(c, msg) {
  const res = await c.post([{ clientId: c.clientId, ...msg }]);
  assert.equal(res.status, 200, res.text);
  return [replyTo(res, msg.id), deliveries(res)];
}

test('#11 subscribe + broadcast: the delivery has no clientId and no id, ext is forwarded', async () => {
  const s1 = await new Client('s1').ready();
  const s2 = await new Client('s2').ready();
  const ch = `/chat/${unique()}`;
  const sub = await s1.subscribe(ch);
  assert.equal(sub.successful, true);
  assert.equal(sub.subscription, ch);
  const poll = s1.connect();
  await sleep(200);
  const [ack] = await publishRaw(s2, { channel: ch, data: { t: 'hi' }, id: '7', ext: { x: 1 } });
  assert.deepEqual({ channel: ack.channel, id: ack.id, successful: ack.successful }, { channel: ch, id: '7', successful: true });
  const res = await poll;
  assert.ok(res.ms < 1500, `the held connect returned after ${res.ms} ms, not on the publish`);
  const d = deliveries(res);
  assert.equal(d.length, 1, res.text);
  assert.equal(d[0].channel, ch);
  assert.deepEqual(d[0].data, { t: 'hi' });
  assert.equal(d[0].ext?.x, 1, res.text);
  assert.ok(!('clientId' in d[0]) && !('id' in d[0]), res.text);
  assert.equal(connectReply(res).successful, true);
});

test('#12 a publisher subscribed three ways receives its own message exactly once', async () => {
  const s1 = await new Client('s1').ready();
  const base = `/${unique('chat')}`;
  for (const s of [`${base}/*`, `${base}/**`, `${base}/a`]) assert.equal((await s1.subscribe(s)).successful, true);
  const [ack, piggy] = await publishRaw(s1, { channel: `${base}/a`, data: 'once', id: '8' });
  assert.equal(ack.successful, true);
  const got = [...piggy, ...(await drainNow(s1))].filter((m) => m.data === 'once');
  assert.equal(got.length, 1, JSON.stringify(got));
});

test('#13 wildcards: /* matches one segment, /** any depth, neither the parent', async () => {
  const s1 = await new Client('s1').ready();
  const s2 = await new Client('s2').ready();
  const pub = await new Client('pub').ready();
  const base = `/${unique('w')}`;
  const r1 = await s1.subscribe([`${base}/*`]);
  assert.equal(r1.successful, true);
  assert.deepEqual(r1.subscription, [`${base}/*`], 'the reply echoes the array');
  assert.equal((await s2.subscribe([`${base}/**`])).successful, true);
  for (const ch of [`${base}/x`, `${base}/x/y`, base]) assert.equal((await pub.publish(ch, ch)).successful, true);
  assert.deepEqual((await drainNow(s1)).map((m) => m.channel), [`${base}/x`]);
  assert.deepEqual((await drainNow(s2)).map((m) => m.channel).sort(), [`${base}/x`, `${base}/x/y`]);
});

test('#14 a service channel is not broadcast', async () => {
  const s1 = await new Client('s1').ready();
  const s2 = await new Client('s2').ready();
  const ch = `/service/${unique()}`;
  assert.equal((await s1.subscribe(ch)).successful, true);
  assert.equal((await s2.publish(ch, { a: 1 })).successful, true);
  assert.deepEqual((await drainNow(s1)).filter((m) => m.channel === ch), []);
});

test('#15 remote call: /service/echo answers the caller with the request id and data', async () => {
  const s1 = await new Client('s1').ready();
  const res = await s1.post([{ channel: '/service/echo', clientId: s1.clientId, data: { a: 1 }, id: '9' }]);
  assert.equal(res.status, 200, res.text);
  const ack = replyTo(res, '9');
  assert.deepEqual({ channel: ack.channel, id: ack.id, successful: ack.successful }, { channel: '/service/echo', id: '9', successful: true });
  // The result (it has `data`, unlike the ack) rides on this response or on the next connect.
  const all = [...res.json, ...(await drainNow(s1))];
  const result = all.find((m) => m.channel === '/service/echo' && m.id === '9' && 'data' in m);
  assert.ok(result, `no remote-call result among ${JSON.stringify(all)}`);
  assert.deepEqual(result.data, { a: 1 });
  assert.equal(result.successful, true);
});

test('#16 subscribing to meta channels is denied', async () => {
  const s1 = await new Client('s1').ready();
  const a = await s1.subscribe('/meta/connect');
  assert.equal(a.successful, false);
  assert.equal(a.error, '403:denied_by_security_policy:subscribe_denied');
  const b = await s1.subscribe('/meta/**');
  assert.equal(b.successful, false);
  assert.equal(b.error, '403:denied_by_security_policy:create_denied');
});

test('#17 publishing to meta channels is denied and delivers nothing', async () => {
  const s1 = await new Client('s1').ready();
  const spy = await new Client('spy').ready();
  assert.equal((await spy.subscribe('/**')).successful, true);
  for (const ch of ['/meta/*', '/meta/foo']) {
    const r = await s1.publish(ch, 1);
    assert.equal(r.successful, false, ch);
    assert.equal(r.error, '403:denied_by_security_policy:channel_create_denied', ch);
  }
  const leaked = (await drainNow(spy)).filter((m) => m.channel.startsWith('/meta/'));
  assert.deepEqual(leaked, []);
  await spy.disconnect();
});

test('#18 invalid channel names: 405::channel_invalid, missing channel: 400::channel_missing', async () => {
  const s1 = await new Client('s1').ready();
  for (const ch of ['/foo<>', 'foo', '/']) {
    const r = await s1.publish(ch, 1);
    assert.equal(r.error, '405::channel_invalid', `${ch}: ${JSON.stringify(r)}`);
    assert.equal(r.successful, false);
  }
  const res = await s1.post([{ clientId: s1.clientId, data: 1, id: '18' }]);
  assert.equal(res.status, 200, res.text);
  assert.equal(replyTo(res, '18').error, '400::channel_missing');
  // Validation comes before the session check: the same with a clientId nobody has.
  const bad = await s1.post([{ channel: '/foo<>', clientId: 'nope', data: 1, id: '19' }, { clientId: 'nope', data: 1, id: '20' }]);
  assert.equal(replyTo(bad, '19').error, '405::channel_invalid', bad.text);
  assert.equal(replyTo(bad, '20').error, '400::channel_missing', bad.text);
});

test('#19 an invalid message id: 405::message_id_invalid with the id echoed', async () => {
  const s1 = await new Client('s1').ready();
  const res = await s1.post([{ channel: '/meta/connect', clientId: s1.clientId, connectionType: 'long-polling', id: 'a-b' }]);
  assert.equal(res.status, 200, res.text);
  const r = res.json.find((m) => m.channel === '/meta/connect');
  assert.equal(r.successful, false, res.text);
  assert.equal(r.error, '405::message_id_invalid');
  assert.equal(r.id, 'a-b');
});

test('#20 bad subscriptions: missing, not a string, bad characters, wildcard in the middle', async () => {
  const s1 = await new Client('s1').ready();
  const missing = await s1.meta('/meta/subscribe');
  assert.equal(missing.error, '403::subscription_missing', JSON.stringify(missing));
  for (const sub of [5, '/bad<']) {
    const r = await s1.subscribe(sub);
    assert.equal(r.successful, false);
    assert.equal(r.error, '403::subscription_invalid', `${sub}: ${JSON.stringify(r)}`);
  }
  const res = await s1.post([{ channel: '/meta/subscribe', clientId: s1.clientId, subscription: '/a/*/b', id: '21' }]);
  if (res.status !== 500) {
    assert.equal(res.status, 200, res.text);
    assert.equal(replyTo(res, '21').error, '403::subscription_invalid', res.text);
  }
});

test('#21 unsubscribe: a never-created channel is channel_missing; after unsubscribe nothing arrives', async () => {
  const s1 = await new Client('s1').ready();
  const pub = await new Client('pub').ready();
  const never = await s1.unsubscribe(`/never/${unique()}`);
  assert.equal(never.successful, false);
  assert.equal(never.error, '400::channel_missing');
  const ch = `/chat/${unique()}`;
  assert.equal((await s1.subscribe(ch)).successful, true);
  // Control: subscribed, a publish arrives.
  assert.equal((await pub.publish(ch, 'before')).successful, true);
  assert.deepEqual((await drainNow(s1)).map((m) => m.data), ['before']);
  const u = await s1.unsubscribe(ch);
  assert.equal(u.successful, true);
  assert.equal(u.subscription, ch);
  assert.equal((await pub.publish(ch, 'after')).successful, true);
  assert.deepEqual((await drainNow(s1)).filter((m) => m.channel === ch), []);
});

test('#22 polls that cycle every few ms while three publishers stream: every subscriber gets each message once, in order', { timeout: 90000 }, async () => {
  // Each held connect ends after a client advice.timeout of 1-8 ms, so publishes find polls parked,
  // being parked, being answered and not parked at all: pushed wake-ups, drains and queued messages mix.
  const ch = `/stress/${unique()}`;
  const N = 300, SUBS = 12, PUBS = 3;
  const subs = await Promise.all([...Array(SUBS).keys()].map(async (s) => {
    const c = await new Client(`sub${s}`).ready();
    assert.equal((await c.subscribe(ch)).successful, true);
    c.got = [];
    c.cycles = 0;
    return c;
  }));
  const pubs = await Promise.all([...Array(PUBS).keys()].map(async (p) => { const c = new Client(`pub${p}`); await c.handshake(); return c; }));
  let streaming = true;
  const polls = subs.map((c, s) => (async () => {
    const end = Date.now() + 60000;
    while (Date.now() < end && (streaming || c.got.length < N * PUBS)) {
      const res = await c.connect({ advice: { timeout: 1 + ((++c.cycles * 7 + s) % 8) } });
      assert.equal(res.status, 200, `${c.name} connect: HTTP ${res.status} ${res.text}`);
      assert.equal(connectReply(res).successful, true, `${c.name} connect: ${res.text}`);
      c.got.push(...deliveries(res).filter((m) => m.channel === ch).map((m) => m.data));
    }
  })());
  await Promise.all(pubs.map((c, p) => (async () => {
    for (let i = 0; i < N; i += 5) {
      const res = await c.post([0, 1, 2, 3, 4].map((j) => ({ channel: ch, clientId: c.clientId, data: { p, i: i + j }, id: c.nextId() })));
      assert.equal(res.status, 200, `${c.name} publish: HTTP ${res.status} ${res.text}`);
    }
  })()));
  streaming = false;
  await Promise.all(polls);
  for (const c of subs) {
    for (let p = 0; p < PUBS; p++) {
      const seq = c.got.filter((d) => d.p === p).map((d) => d.i);
      const have = new Set(seq);
      const missing = [...Array(N).keys()].filter((i) => !have.has(i));
      assert.deepEqual(missing, [], `${c.name} (${c.cycles} connects), publisher ${p}: ${seq.length} of ${N}, missing ${missing.slice(0, 20)}`);
      const dups = seq.filter((i, k) => seq.indexOf(i) !== k);
      const ooo = seq.map((i, k) => [k, i]).filter(([k, i]) => k > 0 && i < seq[k - 1]).map(([k, i]) => `${seq[k - 1]}->${i}@${k}`);
      assert.deepEqual(seq, [...Array(N).keys()], `${c.name} (${c.cycles} connects), publisher ${p}: each once, in order; ${seq.length} received, duplicated ${dups.slice(0, 20)}, out of order ${ooo.slice(0, 10)}`);
    }
  }
  assert.ok(subs.every((c) => c.cycles > 10), 'the polls cycled: ' + subs.map((c) => c.cycles));
});
