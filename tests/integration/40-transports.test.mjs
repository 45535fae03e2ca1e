// callback-polling (JSONP over GET) and CORS, as CometD serves them (bayeux-notes.md §2.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CFG, IMMEDIATE_MS, Client, Jar, request, sleep, unique } from './lib/bayeux.mjs';

// A callback-polling browser: GET /cometd/<type>?jsonp=<cb>&message=<json>.
class JsonpClient {
  constructor(name, cb = 'jQuery3600_17.cb') { this.name = name; this.cb = cb; this.jar = new Jar(); this.n = 0; }
  async get(suffix, messages, { cb = this.cb, raw = false } = {}) {
    const qs = new URLSearchParams();
    if (cb !== null) qs.set('jsonp', cb);
    if (messages !== null) qs.set('message', JSON.stringify(messages));
    const res = await request('GET', `/cometd/${suffix}?${qs}`, { jar: this.jar });
    if (raw) return res;
    assert.equal(res.status, 200, `${this.name} ${suffix}: HTTP ${res.status} ${res.text}`);
    assert.match(res.headers['content-type'], /^text\/javascript/, `${this.name} ${suffix}`);
    const m = /^\s*([A-Za-z0-9._-]+)\(([\s\S]*)\)\s*;?\s*$/.exec(res.text);
    assert.ok(m, `${this.name} ${suffix}: not a JSONP call: ${res.text}`);
    assert.equal(m[1], cb);
    res.json = JSON.parse(m[2]);
    assert.ok(Array.isArray(res.json), res.text);
    return res;
  }
  msg(channel, extra = {}) { return { channel, clientId: this.clientId, id: String(++this.n), ...extra }; }
  async handshake() {
    const res = await this.get('handshake', [{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['callback-polling'], id: '0' }]);
    assert.equal(res.json[0].successful, true, res.text);
    this.clientId = res.json[0].clientId;
    return res;
  }
  connect(extra = {}) { return this.get('connect', [this.msg('/meta/connect', { connectionType: 'callback-polling', ...extra })]); }
}

test('callback-polling: handshake, connect, subscribe and a delivery on the held connect', async () => {
  const j = new JsonpClient('jsonp');
  const hs = await j.handshake();
  assert.ok(hs.json[0].supportedConnectionTypes.includes('callback-polling'), hs.text);
  assert.ok(j.jar.get('BAYEUX_BROWSER'), 'JSONP handshake sets the browser cookie');
  const first = await j.connect({ advice: { timeout: 0 } });
  assert.ok(first.ms < IMMEDIATE_MS, `first connect took ${first.ms} ms`);
  assert.equal(first.json.find((m) => m.channel === '/meta/connect').successful, true, first.text);
  const ch = `/chat/${unique()}`;
  const sub = await j.get('subscribe', [j.msg('/meta/subscribe', { subscription: ch })]);
  assert.equal(sub.json.find((m) => m.channel === '/meta/subscribe').successful, true, sub.text);
  const poll = j.connect();
  await sleep(300);
  const pub = await new Client('pub').ready();
  assert.equal((await pub.publish(ch, { via: 'jsonp' })).successful, true);
  const res = await poll;
  assert.ok(res.ms < CFG.timeout, `held connect returned after ${res.ms} ms, not on the publish`);
  const d = res.json.filter((m) => !('successful' in m));
  assert.deepEqual(d.map((m) => [m.channel, m.data]), [[ch, { via: 'jsonp' }]], res.text);
  assert.equal(res.json.find((m) => m.channel === '/meta/connect').successful, true);
});

test('callback-polling delivers only on /meta/connect (metaConnectDeliverOnly)', async () => {
  const j = new JsonpClient('jsonp-own');
  await j.handshake();
  await j.connect({ advice: { timeout: 0 } });
  const ch = `/chat/${unique()}`;
  await j.get('subscribe', [j.msg('/meta/subscribe', { subscription: ch })]);
  const pub = await j.get('publish', [j.msg(ch, { data: 'mine' })]);
  assert.deepEqual(pub.json.filter((m) => !('successful' in m)), [], `publish response carried deliveries: ${pub.text}`);
  const res = await j.connect();
  assert.deepEqual(res.json.filter((m) => !('successful' in m)).map((m) => m.data), ['mine'], res.text);
});

test('callback-polling: a callback name that is not [A-Za-z0-9._-]{1,64} is refused and never echoed', async () => {
  const j = new JsonpClient('bad-cb');
  const hs = [{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['callback-polling'], id: '0' }];
  for (const cb of ['alert(1)', '<script>', 'a b', 'x'.repeat(65), '']) {
    const res = await j.get('handshake', hs, { cb, raw: true });
    assert.equal(res.status, 400, `jsonp=${cb}: HTTP ${res.status} ${res.text}`);
    if (cb) assert.ok(!res.text.includes(cb), `jsonp=${cb} echoed: ${res.text}`);
    assert.ok(!/text\/javascript/.test(res.headers['content-type'] || ''), `jsonp=${cb}: ${res.headers['content-type']}`);
  }
  const ok = await j.get('handshake', hs, { cb: 'a'.repeat(64) });
  assert.equal(ok.json[0].successful, true, '64 characters are allowed');
});

test('callback-polling without a message parameter fails the request', async () => {
  const j = new JsonpClient('no-message');
  const res = await j.get('connect', null, { raw: true });
  assert.ok(res.status >= 400, `HTTP ${res.status} ${res.text}`);
  const plain = await request('GET', '/cometd/handshake');
  assert.equal(plain.status, 400, `GET without jsonp: HTTP ${plain.status} ${plain.text}`);
});

test('CORS: preflight OPTIONS is 200 with the allowed origin; the POST carries it too', async () => {
  const origin = 'http://app.example.org';
  const pre = await request('OPTIONS', '/cometd/handshake', {
    headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
  });
  assert.equal(pre.status, 200, pre.text);
  assert.ok([origin, '*'].includes(pre.headers['access-control-allow-origin']),
    `Access-Control-Allow-Origin: ${pre.headers['access-control-allow-origin']}`);
  const methods = pre.headers['access-control-allow-methods'] || '';
  assert.match(methods, /POST/, `Access-Control-Allow-Methods: ${methods}`);
  const c = new Client('cors');
  const res = await c.post([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id: '1' }],
    { headers: { Origin: origin } });
  assert.equal(res.status, 200);
  assert.equal(res.json[0].successful, true);
  assert.ok([origin, '*'].includes(res.headers['access-control-allow-origin']),
    `POST Access-Control-Allow-Origin: ${res.headers['access-control-allow-origin']}`);
  const plain = await request('OPTIONS', '/cometd/connect');
  assert.equal(plain.status, 200, 'OPTIONS without Origin is 200 too (CometD passes it through)');
});
