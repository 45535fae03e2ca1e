// The same site over TLS (nginx `listen ... ssl`, as `make run` with HTTPS_PORT): the worker learns the
// request is secure from the HTTPS FastCGI param and only then marks BAYEUX_BROWSER Secure
// (browserCookieSecure = true in the suite's configuration, CometD's rule).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, deliveries, handshakeMessage, sleep, unique } from './lib/bayeux.mjs';

const TLS = process.env.BX_TLS_URL;
const cookieLine = (res) => (res.headers['set-cookie'] || []).find((l) => l.startsWith('BAYEUX_BROWSER='));

test('over TLS the BAYEUX_BROWSER cookie is Secure; over plain HTTP it is not', async () => {
  assert.ok(TLS, 'BX_TLS_URL is not set: run the suite through tests/integration/run.sh');
  const secure = await new Client('tls', undefined, { base: TLS }).post([handshakeMessage('1')], { suffix: 'handshake' });
  assert.equal(secure.status, 200, secure.text);
  assert.equal(secure.json[0].successful, true, secure.text);
  assert.match(cookieLine(secure) || '', /;\s*Secure/i, `over TLS: ${cookieLine(secure)}`);
  const plain = await new Client('plain').post([handshakeMessage('1')], { suffix: 'handshake' });
  assert.ok(cookieLine(plain), plain.text);
  assert.doesNotMatch(cookieLine(plain), /;\s*Secure/i, `over plain HTTP: ${cookieLine(plain)}`);
});

test('a full round trip over TLS: subscribe, publish over plain HTTP, delivery on the held TLS poll', async () => {
  const sub = await new Client('tls-sub', undefined, { base: TLS }).ready();
  const pub = await new Client('plain-pub').ready();
  const ch = `/tls/${unique()}`;
  assert.equal((await sub.subscribe(ch)).successful, true);
  const poll = sub.connect();
  await sleep(200);
  assert.equal((await pub.publish(ch, { over: 'tls' })).successful, true);
  const res = await poll;
  assert.deepEqual(deliveries(res).map((m) => m.data), [{ over: 'tls' }], res.text);
});
