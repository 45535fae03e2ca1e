// The official CometD JavaScript client against the server, over each HTTP transport.
// Server: BX_E2E_URL (tests/e2e/run.sh starts a private stack and sets it).
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, SERVER_URL, MAX_INTERVAL, Clients, Inbox, handshake, subscribe, unsubscribe, publish,
  remoteCall, disconnect, rawPost, sleep, uniq, waitUntil, isHttp,
} from './lib/bayeux.mjs';
import { BayeuxProxy } from './lib/proxy.mjs';

for (const transport of TRANSPORTS) {
  describe(`interop over ${transport}`, () => {
    const clients = new Clients();
    afterEach(() => clients.closeAll());
    const make = (o = {}) => clients.make({ transport, ...o });

    test('handshake and first connect', async () => {
      const c = make();
      const hs = await handshake(c);
      assert.equal(hs.successful, true);
      assert.match(hs.clientId, /^[0-9a-z]{20,}$/);
      assert.equal(hs.version, '1.0');
      assert.ok(hs.supportedConnectionTypes.includes(transport), `server offers ${transport}: ${hs.supportedConnectionTypes}`);
      assert.equal(c.isDisconnected(), false);
      assert.equal(c.getTransport().type, transport);
    });

    test('subscribe and unsubscribe with wildcards', async () => {
      const base = `/e2e/${uniq()}`;
      const one = make(); const deep = make(); const pub = make();
      await Promise.all([handshake(one), handshake(deep), handshake(pub)]);
      const inOne = new Inbox('one'); const inDeep = new Inbox('deep');
      const sOne = await subscribe(one, `${base}/*`, inOne.fn);
      await subscribe(deep, `${base}/**`, inDeep.fn);
      await publish(pub, base, { n: 0 });          // neither wildcard matches the parent
      await publish(pub, `${base}/x`, { n: 1 });   // both
      await publish(pub, `${base}/x/y`, { n: 2 }); // only /**
      await inDeep.waitFor(2);
      await inOne.waitFor(1);
      assert.deepEqual(inDeep.msgs.map(m => [m.channel, m.data.n]), [[`${base}/x`, 1], [`${base}/x/y`, 2]]);
      assert.deepEqual(inOne.msgs.map(m => [m.channel, m.data.n]), [[`${base}/x`, 1]]);
      for (const m of inDeep.msgs) {
        assert.equal(m.clientId, undefined, 'deliveries never carry the publisher clientId');
        assert.equal(m.id, undefined, 'deliveries carry no id');
      }
      await unsubscribe(one, sOne);
      await publish(pub, `${base}/z`, { n: 3 });
      await inDeep.waitFor(3);          // barrier: deep got it, so one would have too
      await sleep(300);
      assert.equal(inOne.msgs.length, 1, 'no delivery after unsubscribe');
    });

    test('a batch of publishes keeps its order', async () => {
      const ch = `/e2e/${uniq()}/batch`;
      const sub = make(); const pub = make();
      await Promise.all([handshake(sub), handshake(pub)]);
      const inbox = new Inbox('batch');
      await subscribe(sub, ch, inbox.fn);
      const acks = [];
      pub.batch(() => {
        for (let i = 0; i < 20; i++) pub.publish(ch, { i }, {}, r => acks.push(r));
      });
      await inbox.waitFor(20);
      assert.deepEqual(inbox.data().map(d => d.i), [...Array(20).keys()]);
      await sleep(100);
      assert.equal(acks.length, 20);
      assert.ok(acks.every(a => a.successful), 'every publish acknowledged');
    });

    test('1,000 messages arrive once each and in order', { timeout: 120000 }, async () => {
      const ch = `/e2e/${uniq()}/thousand`;
      const sub = make(); const pub = make();
      await Promise.all([handshake(sub), handshake(pub)]);
      const inbox = new Inbox('thousand');
      await subscribe(sub, ch, inbox.fn);
      const failures = [];
      for (let i = 0; i < 1000; i++) {
        pub.publish(ch, { i }, {}, r => { if (!r.successful) failures.push(r); });
      }
      await inbox.waitFor(1000, 90000).catch(e => {
        const got = new Set(inbox.data().map(d => d.i));
        throw new Error(`${e.message}; missing ${[...Array(1000).keys()].filter(i => !got.has(i)).join(',')}; ` +
          `publish failures ${failures.length}, subscriber status ${sub.getStatus()}`);
      });
      await sleep(300);
      assert.deepEqual(failures, []);
      const got = inbox.data().map(d => d.i);
      const dups = got.filter((v, k) => got.indexOf(v) !== k);
      assert.deepEqual(dups, [], `duplicated deliveries (${got.length} received)`);
      assert.deepEqual(got, [...Array(1000).keys()]);
    });

    test('remoteCall echo', async () => {
      const c = make();
      await handshake(c);
      const payload = { text: 'hello', n: 42, nested: { a: [1, 2, 3] } };
      const reply = await remoteCall(c, 'echo', payload, 5000);
      assert.equal(reply.successful, true, 'remote call reply: ' + JSON.stringify(reply));
      assert.deepEqual(reply.data, payload);
    });

    test('binary extension data passes through unchanged', async () => {
      const ch = `/e2e/${uniq()}/binary`;
      const sub = make({ binary: true }); const pub = make({ binary: true });
      await Promise.all([handshake(sub), handshake(pub)]);
      const inbox = new Inbox('binary');
      await subscribe(sub, ch, inbox.fn);
      const bytes = new Uint8Array(64).map((_, i) => (i * 37 + 11) & 0xff);
      await new Promise((resolve, reject) => pub.publishBinary(ch, bytes.buffer, true, { name: 'b.bin' },
        r => (r.successful ? resolve() : reject(new Error(JSON.stringify(r))))));
      const [m] = await inbox.waitFor(1);
      assert.equal(m.data.last, true);
      assert.deepEqual(m.data.meta, { name: 'b.bin' });
      assert.deepEqual([...new Uint8Array(m.data.data.buffer || m.data.data)], [...bytes]);
    });

    test('disconnect ends the session', async () => {
      const c = make();
      const hs = await handshake(c);
      const reply = await disconnect(c);
      assert.equal(reply.successful, true);
      assert.equal(c.getStatus(), 'disconnected');
      // The same clientId, with the same browser cookie, is now unknown.
      const r = await rawPost(SERVER_URL, c.e2eJar, [{ channel: '/e2e/after', clientId: hs.clientId, data: 1, id: '1' }]);
      assert.equal(r.status, 200);
      assert.equal(r.json[0].successful, false);
      assert.equal(r.json[0].error, '402::session_unknown');
    });

    test('a handshake with an unknown version and transport still succeeds (CometD ignores them)', async () => {
      const r = await rawPost(SERVER_URL, {}, [{ channel: '/meta/handshake', version: '0.9', minimumVersion: '0.9',
        supportedConnectionTypes: ['flash'], id: '1' }]);
      assert.equal(r.status, 200);
      assert.equal(r.json[0].successful, true, JSON.stringify(r.json));
      assert.equal(r.json[0].version, '1.0');
      assert.ok(r.json[0].supportedConnectionTypes.includes(transport));
      if (r.json[0].supportedConnectionTypes.includes('websocket')) return; // bayeux-ws deployed: nothing missing
      // The official client offering only a transport the server lacks gives up on its own.
      const c = make();
      c.unregisterTransports();
      c.registerTransport('websocket', new (await import('cometd')).WebSocketTransport());
      const reply = await new Promise(resolve => c.handshake(resolve));
      assert.equal(reply.successful, false);
      c.disconnect();
    });

    // The test proxy that starves the session speaks HTTP only.
    if (isHttp(transport)) test('re-handshake after session expiry resubscribes from the handshake listener', { timeout: MAX_INTERVAL + 40000 }, async () => {
      const proxy = await new BayeuxProxy(SERVER_URL).start();
      try {
        const ch = `/e2e/${uniq()}/expiry`;
        const c = make({ url: proxy.url() }); const pub = make();
        const inbox = new Inbox('expiry');
        const handshakes = [];
        // What the CometD docs tell applications to do: (re)subscribe in the handshake listener.
        c.addListener('/meta/handshake', m => {
          if (!m.successful) return;
          handshakes.push(m.clientId);
          c.batch(() => { c.subscribe(ch, inbox.fn); });
        });
        await Promise.all([handshake(c), handshake(pub)]);
        await sleep(300); // let the subscribe from the listener complete
        await publish(pub, ch, { n: 1 });
        await inbox.waitFor(1);
        // Once the next connect is parked at the server, starve the session: hold the connect
        // after it past maxInterval (+ sweep).
        await waitUntil(() => proxy.log.some(e => e.status === 0 && !e.held && (e.req || []).some(m => m.channel === '/meta/connect')),
          5000, 'a parked /meta/connect');
        let starved = false;
        proxy.holdRequest = msgs => {
          if (!starved && msgs.some(m => m.channel === '/meta/connect')) { starved = true; return MAX_INTERVAL + 3000; }
          return 0;
        };
        await publish(pub, ch, { n: 2 }); // returns the parked connect; the next one is held
        await inbox.waitFor(2);
        // Wait for the server to answer 402, the client to re-handshake and resubscribe.
        const t0 = Date.now();
        while (handshakes.length < 2 && Date.now() - t0 < MAX_INTERVAL + 25000) await sleep(200);
        assert.equal(handshakes.length, 2, 'the client handshook again after its session expired');
        assert.notEqual(handshakes[1], handshakes[0], 'a new session');
        const unknown = proxy.replies('/meta/connect').filter(m => m.error === '402::session_unknown');
        assert.ok(unknown.length >= 1, 'server answered 402::session_unknown to the starved connect');
        assert.equal(unknown[0].advice && unknown[0].advice.reconnect, 'handshake');
        await sleep(500);
        await publish(pub, ch, { n: 3 });
        await inbox.waitFor(3);
        assert.deepEqual(inbox.data().map(d => d.n), [1, 2, 3]);
      } finally {
        await proxy.stop();
      }
    });
  });
}
