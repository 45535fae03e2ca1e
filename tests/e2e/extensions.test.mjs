// CometD extensions with the official client extensions: ack, timesync, timestamp, reload.
// A test proxy sits between client and server to see the raw replies and to lose one.
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRANSPORTS, SERVER_URL, Clients, Inbox, MemoryStorage, handshake, subscribe, publish, sleep, uniq, isHttp,
} from './lib/bayeux.mjs';
import { BayeuxProxy } from './lib/proxy.mjs';

for (const transport of TRANSPORTS) {
  describe(`extensions over ${transport}`, () => {
    const clients = new Clients();
    let proxy = null;
    afterEach(async () => {
      await clients.closeAll();
      if (proxy) await proxy.stop();
      proxy = null;
    });
    const make = (o = {}) => clients.make({ transport, ...o });

    // These two need the HTTP test proxy (to lose a reply, to read raw replies).
    if (isHttp(transport)) test('ack: a lost /meta/connect reply is redelivered, in order, once', { timeout: 60000 }, async () => {
      proxy = await new BayeuxProxy(SERVER_URL).start();
      const ch = `/e2e/${uniq()}/ack`;
      const c = make({ url: proxy.url(), ack: true });
      const pub = make();
      const hs = await handshake(c);
      await handshake(pub);
      assert.equal(hs.ext && hs.ext.ack, true, 'handshake reply ext.ack: ' + JSON.stringify(hs.ext));
      const inbox = new Inbox('ack');
      await subscribe(c, ch, inbox.fn);
      // Lose the first connect reply that carries our messages: the server handed it over, the
      // client never got it. The ack extension must resend the whole batch.
      let dropped = null;
      proxy.dropResponse = (req, res) => {
        if (dropped) return false;
        const msgs = res.filter(m => m.channel === ch);
        if (msgs.length && res.some(m => m.channel === '/meta/connect')) { dropped = msgs.map(m => m.data.n); return true; }
        return false;
      };
      await publish(pub, ch, { n: 1 });
      await publish(pub, ch, { n: 2 });
      await inbox.waitFor(2, 20000);
      assert.ok(dropped && dropped.length >= 1, 'the proxy lost a reply carrying messages');
      await publish(pub, ch, { n: 3 });
      await inbox.waitFor(3, 20000);
      await sleep(500);
      assert.deepEqual(inbox.data().map(d => d.n), [1, 2, 3], 'each message once, in order');
      // The wire: connect replies carry increasing ext.ack batch numbers; the connect after the
      // loss acknowledged the batch before the lost one, and the lost messages came again.
      const connects = proxy.replies('/meta/connect').filter(m => m.successful);
      const batches = connects.map(m => m.ext && m.ext.ack).filter(a => typeof a === 'number');
      assert.ok(batches.length >= 2, 'connect replies carry ext.ack: ' + JSON.stringify(connects.map(m => m.ext)));
      for (let i = 1; i < batches.length; i++) assert.ok(batches[i] > batches[i - 1], 'ack batches increase: ' + batches);
      const delivered = proxy.log.flatMap(e => (e.res || []).filter(m => m.channel === ch).map(m => m.data.n));
      assert.ok(delivered.filter(n => n === dropped[0]).length >= 2, `message ${dropped[0]} was sent twice on the wire: ${delivered}`);
    });

    if (isHttp(transport)) test('timesync: replies carry {tc, ts, p, a}', async () => {
      proxy = await new BayeuxProxy(SERVER_URL).start();
      const c = make({ url: proxy.url(), timesync: true });
      const before = Date.now();
      await handshake(c);
      await sleep(200);
      const sent = proxy.log.flatMap(e => e.req || []).filter(m => m.channel === '/meta/handshake');
      assert.ok(sent[0].ext && sent[0].ext.timesync, 'client sent ext.timesync');
      const hs = proxy.replies('/meta/handshake')[0];
      const ts = hs.ext && hs.ext.timesync;
      assert.ok(ts, 'handshake reply has ext.timesync: ' + JSON.stringify(hs));
      for (const k of ['tc', 'ts', 'p', 'a']) assert.equal(typeof ts[k], 'number', `timesync.${k} is a number: ${JSON.stringify(ts)}`);
      assert.equal(ts.tc, sent[0].ext.timesync.tc, 'tc echoed');
      assert.ok(Math.abs(ts.ts - before) < 5000, `server time ${ts.ts} near client time ${before}`);
      assert.ok(ts.p >= 0 && ts.p < 5000, 'processing time p: ' + ts.p);
      const ext = c.getExtension('timesync');
      assert.ok(Number.isFinite(ext.getTimeOffset()), 'client computed an offset');
      assert.ok(Math.abs(ext.getTimeOffset()) < 1000, 'same machine: offset small, got ' + ext.getTimeOffset());
    });

    test('timestamp: server replies carry a top-level timestamp', async () => {
      const c = make();
      const stamps = [];
      c.addListener('/meta/connect', m => stamps.push(m.timestamp));
      const hs = await handshake(c);
      assert.equal(typeof hs.timestamp, 'string', 'handshake reply timestamp: ' + JSON.stringify(hs));
      assert.ok(!Number.isNaN(Date.parse(hs.timestamp)), 'parsable date: ' + hs.timestamp);
      assert.ok(Math.abs(Date.parse(hs.timestamp) - Date.now()) < 120000, 'close to now: ' + hs.timestamp);
      assert.equal(typeof stamps[0], 'string', 'connect reply timestamp');
    });

    test('reload: the same clientId resumes with its subscriptions', { timeout: 30000 }, async () => {
      const ch = `/e2e/${uniq()}/reload`;
      const storage = new MemoryStorage();
      const jar = {}; // one browser: the reloaded page keeps the BAYEUX_BROWSER cookie
      const page1 = make({ jar, reload: storage });
      const pub = make();
      const hs1 = await handshake(page1);
      await handshake(pub);
      const in1 = new Inbox('page1');
      await subscribe(page1, ch, in1.fn);
      await publish(pub, ch, { n: 1 });
      await in1.waitFor(1);
      // The page goes away: state saved to sessionStorage, the poll aborted, no disconnect.
      page1.reload();
      await sleep(200);
      await publish(pub, ch, { n: 2 }); // published while no page is polling: queued
      const page2 = make({ jar, reload: storage });
      const in2 = new Inbox('page2');
      // No subscribe on the new page: a local listener sees what the server still routes here.
      page2.addListener(ch, in2.fn);
      const hs2 = await handshake(page2);
      assert.equal(hs2.clientId, hs1.clientId, 'same clientId after reload');
      assert.equal(hs2.ext && hs2.ext.reload, true, 'handshake was replayed by the reload extension');
      await publish(pub, ch, { n: 3 });
      await in2.waitFor(2, 15000);
      assert.deepEqual(in2.data().map(d => d.n), [2, 3], 'queued and new messages reach the resumed session');
      clients.list = clients.list.filter(x => x !== page1); // page1's session is page2's now
    });
  });
}
