// CometD's websocket semantics through nginx (bayeux-notes.md §2.1 websocket, §2.7, §7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, LongPoll, CFG, sleep, subscriber, unique } from './lib.mjs';

test('handshake, connect, subscribe, publish over one connection; websocket offered first', async () => {
  const c = await Client.open();
  const hs = await c.handshake();
  assert.equal(hs.supportedConnectionTypes[0], 'websocket');
  assert.equal(c.frames.length, 1, 'the handshake reply travels alone in its frame');
  const first = await c.connectFirst();
  assert.equal(first.advice.timeout, CFG.timeout, 'first connect: full advice with ws.timeout');
  const ch = `/ws/${unique()}`;
  await c.subscribe(ch);
  const held = c.connect();
  await sleep(300);
  assert.ok(!c.inbox.some((m) => m.id === held), 'the second connect is held');
  await c.publish(ch, { n: 1 });
  const d = await c.next((m) => m.channel === ch && m.data, 3000, 'delivery');
  assert.deepEqual(d.data, { n: 1 });
  assert.equal(d.clientId, undefined);
  // pushed outside /meta/connect (CometD over websocket): the connect stays held until its timeout
  assert.ok(!c.frames.flat().some((m) => m.id === held), 'the held connect is not answered by the delivery');
  const r = await c.replyTo(held, CFG.timeout + 2000);
  assert.equal(r.successful, true, 'answered at its timeout');
  await c.close();
});

test('held connect ends after ws.timeout with an empty successful reply', async () => {
  const c = await Client.open();
  await c.handshake();
  await c.connectFirst();
  const t0 = Date.now();
  const r = await c.replyTo(c.connect(), CFG.timeout + 3000);
  const ms = Date.now() - t0;
  assert.equal(r.successful, true);
  assert.ok(ms >= CFG.timeout - 200 && ms < CFG.timeout + 2000, `held ${ms} ms`);
  await c.close();
});

test('all replies of one inbound frame come back together in one frame', async () => {
  const c = await Client.open();
  await c.handshake();
  await c.connectFirst();
  const ch = `/ws/${unique()}`;
  const before = c.frames.length;
  c.send([
    { channel: '/meta/subscribe', clientId: c.clientId, subscription: ch, id: 'a1' },
    { channel: `${ch}/other`, clientId: c.clientId, data: 1, id: 'a2' },
    { channel: '/meta/subscribe', clientId: c.clientId, subscription: '/meta/nope', id: 'a3' },
  ]);
  await c.next((m) => m.id === 'a3');
  const f = c.frames[before];
  assert.deepEqual(f.map((m) => m.id), ['a1', 'a2', 'a3']);
  assert.equal(f[2].successful, false);
  await c.close();
});

test('a superseded held connect is dropped silently; the newer one is held', async () => {
  const c = await Client.open();
  await c.handshake();
  await c.connectFirst();
  const a = c.connect();
  await sleep(200);
  const b = c.connect();
  const r = await c.replyTo(b, CFG.timeout + 3000);
  assert.equal(r.successful, true);
  await sleep(300);
  assert.ok(!c.frames.flat().some((m) => m.id === a), 'the older connect got no reply at all');
  await c.close();
});

test('disconnect with a held connect: the connect is answered (reconnect none) before the disconnect reply', async () => {
  // The official client closes the socket only in this order (CometD's); the other order left it open.
  const c = await Client.open();
  await c.handshake();
  await c.connectFirst();
  const held = c.connect();
  await sleep(300);
  c.send([{ channel: '/meta/disconnect', clientId: c.clientId, id: 'd1' }]);
  await c.next((m) => m.id === 'd1', 3000, 'disconnect reply');
  const all = c.frames.flat();
  const iConnect = all.findIndex((m) => m.id === held);
  const iDisc = all.findIndex((m) => m.id === 'd1');
  assert.ok(iConnect >= 0 && iConnect < iDisc, `held connect answered before the disconnect reply: ${JSON.stringify(all.slice(-3))}`);
  assert.equal(all[iConnect].advice?.reconnect, 'none');
  await c.close();
});

test('session continues on a new connection by clientId; messages queued in between arrive', async () => {
  const ch = `/ws/${unique()}`;
  const c1 = await Client.open();
  await c1.handshake();
  await c1.connectFirst();
  await c1.subscribe(ch);
  const cid = c1.clientId;
  await c1.close();
  const pub = await Client.open();
  await pub.handshake();
  await pub.publish(ch, { while: 'away' });
  const c2 = await Client.open();
  c2.clientId = cid;
  const r = await c2.call({ channel: '/meta/connect', clientId: cid, connectionType: 'websocket' });
  assert.equal(r.successful, true, JSON.stringify(r));
  const d = await c2.next((m) => m.channel === ch, 100, 'queued delivery in the connect reply frame');
  assert.deepEqual(d.data, { while: 'away' });
  await c2.publish(ch, { again: 1 });
  await c2.replyTo(c2.connect(), CFG.timeout + 2000);
  const d2 = c2.frames.flat().find((m) => m.channel === ch && m.data && m.data.again);
  assert.ok(d2, 'the reused session receives new publishes');
  await c2.close();
  await pub.close();
});

test('unknown clientId over websocket: 402 with handshake advice', async () => {
  const c = await Client.open();
  const r = await c.call({ channel: '/meta/connect', clientId: 'nosuchsession0000000000000', connectionType: 'websocket' });
  assert.equal(r.successful, false);
  assert.equal(r.error, '402::session_unknown');
  assert.equal(r.advice.reconnect, 'handshake');
  await c.close();
});

test('long-polling publisher reaches a websocket subscriber, and back', async () => {
  const ch = `/mixed/${unique()}`;
  const w = await subscriber(ch);
  const lp = new LongPoll();
  await lp.handshake();
  await lp.connect({ timeout: 0 });
  const [sub] = await lp.post([{ channel: '/meta/subscribe', clientId: lp.clientId, subscription: ch }]);
  assert.equal(sub.successful, true);
  const [pr] = await lp.post([{ channel: ch, clientId: lp.clientId, data: { from: 'lp' } }]);
  assert.equal(pr.successful, true);
  const d = await w.next((m) => m.channel === ch && m.data && m.data.from === 'lp', 3000, 'lp → ws delivery');
  assert.ok(d);
  await lp.connect(); // takes its own publish (broadcastToPublisher)
  const poll = lp.connect();
  await sleep(300);
  await w.publish(ch, { from: 'ws' });
  const got = await poll;
  assert.ok(got.some((m) => m.channel === ch && m.data && m.data.from === 'ws'), JSON.stringify(got));
  await w.close();
});

test('ack and timesync extensions work over websocket', async () => {
  const ch = `/ext/${unique()}`;
  const c = await Client.open();
  const hs = await c.handshake({ ack: true });
  assert.equal(hs.ext && hs.ext.ack, true);
  const now = Date.now();
  const r1 = await c.call({ channel: '/meta/connect', clientId: c.clientId, connectionType: 'websocket',
    advice: { timeout: 0 }, ext: { ack: -1, timesync: { tc: now, l: 0, o: 0 } } });
  assert.equal(r1.successful, true);
  assert.ok(r1.ext && r1.ext.timesync && typeof r1.ext.timesync.ts === 'number', JSON.stringify(r1));
  await c.subscribe(ch);
  await c.publish(ch, 'x');
  const r2 = await c.call({ channel: '/meta/connect', clientId: c.clientId, connectionType: 'websocket',
    ext: { ack: r1.ext.ack } });
  const deliveries = () => c.frames.flat().filter((m) => m.channel === ch && !('successful' in m));
  assert.equal(deliveries().length, 1, 'delivery with the connect');
  assert.ok(r2.ext.ack > r1.ext.ack, JSON.stringify(r2));
  // not acknowledged: the same batch comes again on the next connect
  const r3 = await c.call({ channel: '/meta/connect', clientId: c.clientId, connectionType: 'websocket',
    ext: { ack: r1.ext.ack } });
  assert.equal(deliveries().length, 2, 'redelivered without ack');
  assert.ok(r3.successful);
  await c.close();
});

test('ws.messagesPerFrame = 1: deliveries in their own frames before the connect reply', async () => {
  const ch = `/mpf/${unique()}`;
  const c = await Client.open();
  await c.handshake();
  await c.connectFirst();
  await c.subscribe(ch);
  const pub = await Client.open();
  await pub.handshake();
  for (let i = 0; i < 3; i++) await pub.publish(ch, i);
  const before = c.frames.length;
  const id = c.connect();
  await c.replyTo(id, 2000);
  const frames = c.frames.slice(before);
  assert.deepEqual(frames.map((f) => f.length), [1, 1, 1, 1], JSON.stringify(frames));
  assert.deepEqual(frames.slice(0, 3).map((f) => f[0].data), [0, 1, 2]);
  assert.equal(frames[3][0].id, id);
  await c.close();
  await pub.close();
});

test('300 frames written at once: every one answered, the publishes delivered in order', async () => {
  // more frames than a connection may have in progress (reading pauses, then resumes)
  const ch = `/burst/${unique()}`;
  const c = await subscriber(ch);
  const pub = await Client.open();
  await pub.handshake();
  const n = 300;
  const frames = [];
  for (let i = 0; i < n; i++) frames.push(JSON.stringify([{ channel: ch, clientId: pub.clientId, data: i, id: `b${i}` }]));
  pub.ws._socket.cork();
  for (const f of frames) pub.ws.send(f);
  pub.ws._socket.uncork();
  for (let i = 0; i < n; i++) {
    const r = await pub.next((m) => m.id === `b${i}`, 10000, `reply b${i}`);
    assert.equal(r.successful, true);
  }
  c.autoConnect = true;
  c.connect();
  const got = [];
  while (got.length < n) got.push((await c.next((m) => m.channel === ch && !('successful' in m), 10000, 'burst delivery')).data);
  assert.deepEqual(got, [...Array(n).keys()]);
  c.autoConnect = false;
  await c.close();
  await pub.close();
});
