// bayeux-notes.md §7 scenarios 1–10: handshake, first and held connects, session checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CFG, IMMEDIATE_MS, Client, Jar, handshakeMessage, connectReply, request } from './lib/bayeux.mjs';

test('#1 handshake success: reply fields, advice and the BAYEUX_BROWSER cookie', async () => {
  const c = new Client('s1');
  const res = await c.post([handshakeMessage('1')], { suffix: 'handshake' });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.ok(Array.isArray(res.json) && res.json.length === 1, res.text);
  const r = res.json[0];
  assert.equal(r.channel, '/meta/handshake');
  assert.equal(r.id, '1');
  assert.equal(r.successful, true);
  assert.match(r.clientId, /^[0-9A-Za-z]{20,}$/);
  assert.equal(r.version, '1.0');
  assert.equal(r.minimumVersion, '1.0');
  assert.ok(r.supportedConnectionTypes.includes('long-polling'), res.text);
  assert.equal(r.advice.reconnect, 'retry');
  assert.equal(r.advice.interval, 0);
  assert.equal(r.advice.timeout, CFG.timeout);
  const cookie = (res.headers['set-cookie'] || []).find((l) => l.startsWith('BAYEUX_BROWSER='));
  assert.ok(cookie, `no BAYEUX_BROWSER cookie: ${JSON.stringify(res.headers['set-cookie'])}`);
  assert.match(cookie, /^BAYEUX_BROWSER=[^;]+;/);
  assert.match(cookie, /;\s*Path=\//i);
  assert.match(cookie, /;\s*HttpOnly/i);
});

test('#2 handshake as a bare object gets an array reply', async () => {
  const c = new Client('s2');
  const res = await c.post(handshakeMessage('1'), { suffix: 'handshake' });
  assert.equal(res.status, 200);
  assert.ok(Array.isArray(res.json) && res.json.length === 1, res.text);
  assert.equal(res.json[0].successful, true);
  assert.match(res.json[0].clientId, /^[0-9A-Za-z]{20,}$/);
});

test('#3 handshake ignores bogus version and connection types', async () => {
  const c = new Client('s3');
  const res = await c.post([handshakeMessage('1', { version: '0.9', supportedConnectionTypes: ['flash'] })]);
  assert.equal(res.status, 200);
  const r = res.json[0];
  assert.equal(r.successful, true, res.text);
  assert.ok(r.supportedConnectionTypes.includes('long-polling'), res.text);
  assert.ok(!r.supportedConnectionTypes.includes('flash'), res.text);
});

test('#4 handshake batched with another message: HTTP 500, no session', async () => {
  const c = new Client('s4');
  const res = await c.post([handshakeMessage('1'), { channel: '/foo', data: 1 }]);
  assert.equal(res.status, 500, res.text);
  assert.ok(!/clientId/.test(res.text), res.text);
  assert.equal(c.jar.get('BAYEUX_BROWSER'), undefined, 'a failed handshake must not set the cookie');
});

test('#5 first connect is not held and carries no advice', async () => {
  const c = new Client('s5');
  await c.handshake();
  const res = await c.post([{ channel: '/meta/connect', clientId: c.clientId, connectionType: 'long-polling', id: '2' }]);
  assert.equal(res.status, 200);
  assert.ok(res.ms < IMMEDIATE_MS, `first connect took ${res.ms} ms`);
  const r = connectReply(res);
  assert.equal(r.successful, true, res.text);
  assert.equal(r.id, '2');
  assert.equal(r.clientId, undefined, res.text);
  assert.equal(r.advice, undefined, res.text);
});

test('#6 first connect with client advice gets the full server advice', async () => {
  const c = new Client('s6');
  await c.handshake();
  const res = await c.connect({ advice: { timeout: 0 } });
  assert.ok(res.ms < IMMEDIATE_MS, `took ${res.ms} ms`);
  const r = connectReply(res);
  assert.equal(r.successful, true, res.text);
  assert.deepEqual({ reconnect: r.advice?.reconnect, interval: r.advice?.interval, timeout: r.advice?.timeout },
    { reconnect: 'retry', interval: 0, timeout: CFG.timeout }, res.text);
});

test('#7 the second connect is held for about timeout ms and returns only its reply', async () => {
  const c = await new Client('s7').ready();
  const res = await c.connect();
  assert.equal(res.status, 200);
  assert.ok(res.ms >= CFG.timeout - 100, `returned after ${res.ms} ms, timeout is ${CFG.timeout}`);
  assert.ok(res.ms <= CFG.timeout + 1000, `returned after ${res.ms} ms, timeout is ${CFG.timeout}`);
  assert.equal(res.json.length, 1, res.text);
  assert.equal(connectReply(res).successful, true);
});

test('#8 connect with an unknown clientId: 402 with handshake advice, immediately', async () => {
  const c = new Client('s8');
  await c.handshake(); // a real cookie, a wrong clientId
  const res = await c.post([{ channel: '/meta/connect', clientId: 'nope', connectionType: 'long-polling', id: '3' }]);
  assert.equal(res.status, 200);
  assert.ok(res.ms < IMMEDIATE_MS, `took ${res.ms} ms`);
  const r = connectReply(res);
  assert.equal(r.successful, false);
  assert.equal(r.error, '402::session_unknown');
  assert.equal(r.id, '3');
  assert.equal(r.advice?.reconnect, 'handshake', res.text);
  assert.equal(r.advice?.interval, 0, res.text);
});

test('#9 publish without clientId: 402 and no advice', async () => {
  const c = new Client('s9');
  const res = await c.post([{ channel: '/foo', data: 1, id: '5' }]);
  assert.equal(res.status, 200);
  const r = res.json.find((m) => m.id === '5');
  assert.equal(r.successful, false, res.text);
  assert.equal(r.error, '402::session_unknown');
  assert.equal(r.advice, undefined, res.text);
});

test('#10 a clientId is only accepted with the cookie it handshook with', async () => {
  const c = await new Client('s10').ready();
  const other = new Client('s10-other');
  await other.handshake();
  const msg = () => [{ channel: '/meta/connect', clientId: c.clientId, connectionType: 'long-polling', id: '4', advice: { timeout: 0 } }];
  const noCookie = await request('POST', '/cometd/connect', { body: msg() });
  assert.equal(connectReply(noCookie).error, '402::session_unknown', `without cookie: ${noCookie.text}`);
  const wrong = await request('POST', '/cometd/connect', { body: msg(), jar: other.jar });
  assert.equal(connectReply(wrong).error, '402::session_unknown', `with another browser's cookie: ${wrong.text}`);
  // Control: the right cookie still works, so the rejections above were about the cookie.
  const ok = await request('POST', '/cometd/connect', { body: msg(), jar: c.jar });
  assert.equal(connectReply(ok).successful, true, ok.text);
  const jar = new Jar(); // a cookie value never issued
  jar.cookies.set('BAYEUX_BROWSER', 'zzzzzzzzzzzzzzzz');
  const forged = await request('POST', '/cometd/connect', { body: msg(), jar });
  assert.equal(connectReply(forged).error, '402::session_unknown', `with a forged cookie: ${forged.text}`);
});
