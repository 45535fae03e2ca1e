// Push outside /meta/connect (CometD's websocket semantics, bayeux-notes.md §2.1, §2.7): messages go
// to the socket as soon as they are published while the connect stays held; a connect batched with
// other messages is held too; with the ack extension deliveries ride on the connect (CometD's
// metaConnectDeliveryOnly); a pushed batch is confirmed only once the kernel took its bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Client, CFG, LongPoll, direct, frame, sleep, subscriber, unique, upgradeHead } from './lib.mjs';

const DIRECT = `ws://${process.env.BX_WS_DIRECT}/cometd`;
const redis = (...args) => execFileSync('redis-cli', ['-p', process.env.BX_REDIS_PORT, '--raw', ...args]).toString().trim();
const inflight = (cid) => Number(redis('LLEN', `${process.env.BX_REDIS_PREFIX}{${cid}}:f`));
const deliveries = (c, ch) => c.frames.flat().filter((m) => m.channel === ch && !('successful' in m));

test('a publish is pushed to a websocket subscriber while its /meta/connect stays held', async () => {
  const ch = `/push/${unique()}`;
  const c = await subscriber(ch);
  const pub = await Client.open();
  await pub.handshake();
  await sleep(200); // the connect is held by now
  await pub.publish(ch, { n: 1 });
  const d = await c.next((m) => m.channel === ch, 3000, 'pushed delivery');
  assert.deepEqual(d.data, { n: 1 });
  const frame = c.frames.find((f) => f.includes(d));
  assert.ok(!frame.some((m) => m.channel === '/meta/connect'), 'the delivery travels without a connect reply');
  await pub.publish(ch, { n: 2 });
  await c.next((m) => m.channel === ch && m.data.n === 2, 3000, 'second pushed delivery (still held)');
  await sleep(100);
  assert.ok(!c.frames.flat().some((m) => m.id === c.pending), 'the connect is still held');
  assert.equal(inflight(c.clientId), 0, 'pushed batches confirmed once written');
  const r = await c.replyTo(c.pending, CFG.timeout + 2000);
  assert.equal(r.successful, true);
  assert.equal(deliveries(c, ch).length, 2, 'nothing delivered twice');
  await c.close();
  await pub.close();
});

test('pushed messages are framed ws.messagesPerFrame (1) per frame', async () => {
  const ch = `/push/${unique()}`;
  const c = await subscriber(ch);
  const pub = await Client.open();
  await pub.handshake();
  await sleep(200);
  const before = c.frames.length;
  pub.send([0, 1, 2, 3].map((i) => ({ channel: ch, clientId: pub.clientId, data: i, id: `m${i}` })));
  const got = [];
  while (got.length < 4) got.push((await c.next((m) => m.channel === ch, 3000, 'pushed delivery')).data);
  assert.deepEqual(got, [0, 1, 2, 3]);
  const frames = c.frames.slice(before);
  assert.deepEqual(frames.map((f) => f.length), [1, 1, 1, 1], JSON.stringify(frames));
  await c.close();
  await pub.close();
});

test('a /meta/connect batched with a publish is held; the replies of the frame come together (CometD)', async () => {
  const ch = `/push/${unique()}`;
  const c = await Client.open();
  await c.handshake();
  await c.connectFirst();
  await c.subscribe(ch);
  const t0 = Date.now();
  c.send([{ channel: '/meta/connect', clientId: c.clientId, connectionType: 'websocket', id: 'bc' },
    { channel: ch, clientId: c.clientId, data: 'own', id: 'bp' }]);
  const d = await c.next((m) => m.channel === ch && !('successful' in m), 3000, 'the publish delivered at once');
  assert.equal(d.data, 'own');
  await sleep(300);
  assert.ok(!c.frames.flat().some((m) => m.id === 'bc'), 'the batched connect is held');
  const r = await c.next((m) => m.id === 'bc', CFG.timeout + 2000, 'the connect reply at its timeout');
  assert.ok(Date.now() - t0 >= CFG.timeout - 200, 'held for ws.timeout');
  assert.equal(r.successful, true);
  const frame = c.frames.find((f) => f.some((m) => m.id === 'bc'));
  assert.deepEqual(frame.map((m) => m.id), ['bp', 'bc'], 'publish reply, then the connect reply, in one frame');
  assert.equal(frame[0].successful, true);
  await c.close();
});

test('with the ack extension a publish answers the held connect (CometD delivers on connects only)', async () => {
  const ch = `/push/${unique()}`;
  const c = await Client.open();
  await c.handshake({ ack: true });
  const r1 = await c.call({ channel: '/meta/connect', clientId: c.clientId, connectionType: 'websocket',
    advice: { timeout: 0 }, ext: { ack: 0 } });
  await c.subscribe(ch);
  const id = 'ack2';
  c.send([{ channel: '/meta/connect', clientId: c.clientId, connectionType: 'websocket', id, ext: { ack: r1.ext.ack } }]);
  await sleep(200);
  const pub = await Client.open();
  await pub.handshake();
  await pub.publish(ch, 'acked');
  const r = await c.next((m) => m.id === id, 3000, 'the held connect answered by the publish');
  assert.ok(r.ext.ack > r1.ext.ack, JSON.stringify(r));
  const frame = c.frames.find((f) => f.includes(r));
  assert.ok(deliveries(c, ch).length === 1 && frame.some((m) => m.channel === ch) ||
    c.frames.indexOf(frame) > c.frames.findIndex((f) => f.some((m) => m.channel === ch)), 'delivery before its reply');
  await c.close();
  await pub.close();
});

test('a socket that dies before pushed messages were written: they come again on the next connect', async () => {
  // A raw socket straight to bayeux-ws that stops reading for good (npm ws resumes its socket by itself):
  // the kernel's buffers fill, later pushes wait in bayeux-ws's output buffer, unconfirmed. The socket
  // then dies; a new connection continues the session and gets every message it never read past that.
  const d = await direct();
  const sock = d.sock;
  const until = async (re, what) => {
    for (let t = 0; t < 300 && !re.test(d.got); t++) await sleep(10);
    assert.match(d.got, re, what);
  };
  const send = (msgs) => sock.write(frame(1, JSON.stringify(msgs)));
  sock.write(upgradeHead());
  send([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] }]);
  await until(/"clientId":"([a-z0-9]+)"/, 'handshake reply');
  const cid = /"clientId":"([a-z0-9]+)"/.exec(d.got)[1];
  const ch = `/push/${unique()}`;
  send([{ channel: '/meta/connect', clientId: cid, connectionType: 'websocket', advice: { timeout: 0 }, id: 'f' }]);
  send([{ channel: '/meta/subscribe', clientId: cid, subscription: ch, id: 's' }]);
  await until(/"\/meta\/subscribe"/, 'subscribe reply');
  send([{ channel: '/meta/connect', clientId: cid, connectionType: 'websocket', id: 'held' }]);
  await sleep(100);
  sock.removeAllListeners('data');
  sock.pause();
  const pub = await Client.open();
  await pub.handshake();
  // publish until pushes stop reaching the kernel (in-flight stays non-empty), within the connect's hold;
  // 6 x 40 KB per round stays under ws.maxOutboundBytes
  const pad = 'x'.repeat(40000);
  let n = 0;
  while (n < 400) {
    await Promise.all([0, 1, 2, 3, 4, 5].map(() => pub.publish(ch, { i: n++, pad })));
    await sleep(20);
    if (inflight(cid) > 0 && (await sleep(50), inflight(cid) > 0)) break;
  }
  const waiting = inflight(cid);
  assert.ok(waiting > 0, `pushed but not written messages stay in flight (${waiting} of ${n})`);
  sock.destroy();
  const c2 = await Client.open();
  c2.clientId = cid;
  const r = await c2.call({ channel: '/meta/connect', clientId: cid, connectionType: 'websocket' });
  assert.equal(r.successful, true, JSON.stringify(r));
  const again = deliveries(c2, ch).map((m) => m.data.i);
  assert.ok(again.length >= waiting, `every unconfirmed message comes again (${again.length} < ${waiting})`);
  assert.deepEqual(again, [...Array(again.length).keys()].map((k) => n - again.length + k), 'the newest ones, in order');
  await c2.close();
  await pub.close();
});

test('connects that cycle every few ms while publishes stream: every subscriber gets each message once, in order', { timeout: 60000 }, async () => {
  // Each held connect ends after a client advice.timeout of 1-8 ms, so a new bx_connect is often in
  // flight when a publish pushes to the session (the wake-up and the connect reply come over two Redis
  // connections, in either order). A pushed batch the exchange has not written must never be overtaken
  // by a later one, whose confirm would drop it. Publishers over websocket and over long-polling (other
  // processes, other Redis connections) stream frames of 5 without waiting for replies.
  const ch = `/push/${unique()}`;
  const N = 400, SUBS = 16, HTTP_PUBS = 3;
  const subs = [];
  for (let s = 0; s < SUBS; s++) {
    const c = await Client.open();
    await c.handshake();
    await c.connectFirst();
    await c.subscribe(ch);
    c.cycles = 0;
    c.connect = function () {
      const id = `k${s}x${++this.cycles}`;
      this.send([{ channel: '/meta/connect', clientId: this.clientId, connectionType: 'websocket', id,
        advice: { timeout: 1 + ((this.cycles * 7 + s) % 8) } }]);
      return id;
    };
    c.autoConnect = true;
    c.connect();
    subs.push(c);
  }
  const ws = await Client.open();
  await ws.handshake();
  const http = [];
  for (let k = 0; k < HTTP_PUBS; k++) { const lp = new LongPoll(); await lp.handshake(); http.push(lp); }
  const frameOf = (cid, p, i) => [0, 1, 2, 3, 4].map((j) => ({ channel: ch, clientId: cid, data: { p, i: i + j }, id: `p${p}x${i + j}` }));
  const streams = [(async () => {
    for (let i = 0; i < N; i += 5) { ws.send(frameOf(ws.clientId, 0, i)); if (i % 25 === 0) await sleep(1); }
  })(), ...http.map((lp, k) => (async () => {
    for (let i = 0; i < N; i += 5) await lp.post(frameOf(lp.clientId, k + 1, i)); // in order: one at a time
  })())];
  try {
    await Promise.all(streams);
    const P = 1 + HTTP_PUBS;
    const got = (c, p) => deliveries(c, ch).filter((m) => m.data.p === p).map((m) => m.data.i);
    const done = () => subs.every((c) => deliveries(c, ch).length >= N * P);
    for (let t = 0; t < 600 && !done(); t++) await sleep(50);
    await sleep(200); // a duplicate would arrive now
    for (const [s, c] of subs.entries()) {
      for (let p = 0; p < P; p++) {
        const seq = got(c, p);
        const have = new Set(seq);
        const missing = [...Array(N).keys()].filter((i) => !have.has(i));
        assert.deepEqual(missing, [], `subscriber ${s} (${c.cycles} connects), publisher ${p}: ${seq.length} of ${N}, missing ${missing.slice(0, 20)}`);
        assert.deepEqual(seq, [...Array(N).keys()], `subscriber ${s}, publisher ${p}: each once, in order`);
      }
    }
    assert.ok(subs.every((c) => c.cycles > 10), 'the connects cycled: ' + subs.map((c) => c.cycles));
  } finally {
    for (const c of [...subs, ws]) { c.autoConnect = false; await c.close(); }
  }
});
