// Security policy with HS256 (tests/services/run.sh config): JWT handshakes, channel authorizers
// (/secret/** subscribe+publish: role admin; /auth/** publish: authenticated; /locked/* create: nobody),
// presence on /presence. Denials answer exactly as CometD and deliver nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, connectReply, deliveries, handshakeMessage, sleep, unique } from '../integration/lib/bayeux.mjs';
import { inAMinute, jwt, workerLog } from './lib.mjs';

// Handshake with ext.token; returns the handshake reply (not asserted).
async function handshakeWith(c, token, extra = {}) {
  const res = await c.post([handshakeMessage(c.nextId(), { ext: { token }, ...extra })], { suffix: 'handshake' });
  assert.equal(res.status, 200, res.text);
  const r = res.json[0];
  if (r.successful) c.clientId = r.clientId;
  return r;
}

// A connected client authenticated with these claims.
async function authed(name, claims) {
  const c = new Client(name);
  const r = await handshakeWith(c, jwt({ exp: inAMinute(), ...claims }));
  assert.equal(r.successful, true, JSON.stringify(r));
  const res = await c.connect({ advice: { timeout: 0 } });
  assert.equal(connectReply(res).successful, true, res.text);
  return c;
}

async function drainNow(c) {
  await sleep(250);
  const res = await c.connect({ advice: { timeout: 0 } });
  assert.equal(connectReply(res).successful, true, res.text);
  return deliveries(res);
}

test('a valid HS256 token is accepted; tampered, wrong-key, expired, unsigned and malformed tokens are denied', async () => {
  const ok = await handshakeWith(new Client('ok'), jwt({ sub: 'ann', exp: inAMinute() }));
  assert.equal(ok.successful, true, JSON.stringify(ok));
  const good = jwt({ sub: 'ann', exp: inAMinute() });
  const [h, p] = good.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'root', exp: inAMinute() })).toString('base64url')}.${good.split('.')[2]}`;
  const cases = {
    tampered: forged,
    'wrong key': jwt({ sub: 'ann', exp: inAMinute() }, { key: 'not-the-secret-at-all-0123' }),
    expired: jwt({ sub: 'ann', exp: Math.floor(Date.now() / 1000) - 10 }),
    unsigned: jwt({ sub: 'ann' }, { alg: 'none' }),
    malformed: `${h}.${p}`,
    'not a string': 42,
    'no subject': jwt({ name: 'ann', exp: inAMinute() }),
  };
  for (const [what, token] of Object.entries(cases)) {
    const c = new Client(what);
    const r = await handshakeWith(c, token);
    assert.equal(r.successful, false, `${what}: ${JSON.stringify(r)}`);
    assert.equal(r.error, '403::handshake_denied', what);
    assert.equal(r.advice?.reconnect, 'none', what);
    assert.ok(!('clientId' in r) || !r.clientId, what);
  }
  // each denial is logged at info with the reason
  await sleep(100);
  assert.ok(workerLog(/info .*handshake denied: .*bad signature/).length >= 2, 'bad signatures logged');
  assert.ok(workerLog(/info .*handshake denied: expired/).length >= 1, 'expiry logged');
  // no token: anonymous (jwtRequired = false)
  assert.equal((await new Client('anon').handshake()).successful, true);
});

test('denied subscribe: 403 subscribe_denied and no message published afterwards ever arrives', async () => {
  const ch = `/secret/${unique()}`;
  const anon = await new Client('anon').ready();
  const user = await authed('user', { sub: 'uli', roles: ['ops'] });
  const admin = await authed('admin', { sub: 'ada', roles: ['ops', 'admin'] });
  for (const c of [anon, user]) {
    const r = await c.subscribe(ch);
    assert.equal(r.successful, false, JSON.stringify(r));
    assert.equal(r.error, '403:denied_by_security_policy:subscribe_denied');
  }
  // a batch [allowed, denied]: processing stops at the denial, the element before it stays (CometD)
  const open = `/open/${unique()}`;
  const mixed = await user.subscribe([open, ch]);
  assert.equal(mixed.error, '403:denied_by_security_policy:subscribe_denied');
  assert.equal((await admin.publish(open, { o: 1 })).successful, true);
  assert.deepEqual((await drainNow(user)).filter((m) => m.channel === open).map((m) => m.data), [{ o: 1 }]);
  assert.equal((await admin.subscribe(ch)).successful, true);
  assert.equal((await admin.subscribe('/secret/**')).successful, true);
  const pub = await admin.publish(ch, { top: 'secret' });
  assert.equal(pub.successful, true, JSON.stringify(pub));
  const denied = await user.publish(ch, { x: 1 });
  assert.equal(denied.error, '403:denied_by_security_policy:publish_denied');
  assert.deepEqual((await drainNow(anon)).filter((m) => m.channel === ch), []);
  assert.deepEqual((await drainNow(user)).filter((m) => m.channel === ch), []);
  assert.deepEqual((await drainNow(admin)).filter((m) => m.channel === ch).map((m) => m.data), [{ top: 'secret' }],
    'the admin gets the message once (two subscriptions, one delivery)');
});

test('publish needs authentication on /auth/**; create denied on /locked/*; a chat name is not authentication', async () => {
  const ch = `/auth/${unique()}`;
  const watcher = await new Client('watcher').ready();
  assert.equal((await watcher.subscribe(ch)).successful, true, 'subscribing is open');
  const anon = await new Client('anon').ready();
  // a member name makes a user id, but not an authenticated session
  assert.equal((await anon.publish('/service/members', { room: `/chat/${unique()}`, user: 'mallory' })).successful, true);
  const r = await anon.publish(ch, { x: 1 });
  assert.equal(r.error, '403:denied_by_security_policy:publish_denied');
  const user = await authed('user', { sub: 'uli' });
  assert.equal((await user.publish(ch, { x: 2 })).successful, true);
  assert.deepEqual((await drainNow(watcher)).filter((m) => m.channel === ch).map((m) => m.data), [{ x: 2 }]);
  const locked = await user.publish(`/locked/${unique()}`, {});
  assert.equal(locked.error, '403:denied_by_security_policy:create_denied');
  const lockedSub = await user.subscribe(`/locked/${unique()}`);
  assert.equal(lockedSub.error, '403:denied_by_security_policy:create_denied');
});

test('presence: a user\'s first session publishes joined, its last one leaving publishes left', async () => {
  const watcher = await new Client('watcher').ready();
  assert.equal((await watcher.subscribe('/presence')).successful, true);
  const who = unique('p');
  const s1 = await authed('s1', { sub: who });
  const s2 = await authed('s2', { sub: who });
  const seen = async () => (await drainNow(watcher)).filter((m) => m.channel === '/presence' && m.data.user === who).map((m) => m.data.presence);
  assert.deepEqual(await seen(), ['joined'], 'one joined for two sessions');
  assert.equal((await s1.disconnect()).successful, true);
  assert.deepEqual(await seen(), [], 'still one session left');
  assert.equal((await s2.disconnect()).successful, true);
  assert.deepEqual(await seen(), ['left']);
});

test('an "Authorization: Bearer" header authenticates a long-polling handshake like ext.token', async () => {
  const post = (token, ext) => {
    const c = new Client('hdr');
    return c.post([handshakeMessage(c.nextId(), ext ? { ext } : {})], { suffix: 'handshake', headers: { Authorization: `Bearer ${token}` } })
      .then((res) => { assert.equal(res.status, 200, res.text); return res.json[0]; });
  };
  const good = jwt({ sub: 'hedda', exp: inAMinute() });
  assert.equal((await post(good)).successful, true);
  const bad = await post(jwt({ sub: 'hedda', exp: inAMinute() }, { key: 'wrong-secret-wrong-secret' }));
  assert.equal(bad.error, '403::handshake_denied');
  assert.equal(bad.advice?.reconnect, 'none');
  // ext.token wins over the header
  const both = await post(good, { token: 'not.a.token' });
  assert.equal(both.error, '403::handshake_denied');
  await sleep(100);
  assert.ok(workerLog(/debug .*token \(Authorization header\) ok: user hedda/).length >= 1, 'the header path was taken');
});
