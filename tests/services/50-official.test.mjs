// The services with the official CometD JavaScript client (npm cometd via tests/e2e/lib): remote calls
// (built-in echo, the external example service), JWT handshakes in ext.token, a denied subscribe that
// never receives, chat membership and a private message that reaches only its target.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { jwt, inAMinute } from './lib.mjs';

process.env.BX_E2E_URL = `${process.env.BX_URL}/cometd`;
const { Clients, Inbox, handshake, publish, remoteCall, subscribe, sleep, uniq, waitUntil } =
  await import('../e2e/lib/bayeux.mjs');

const clients = new Clients();
after(() => clients.closeAll());

test('remote calls: echo and an external service answer the official client', async () => {
  const svc = spawn('/usr/bin/python3', ['examples/services/upper.py', '--redis', `127.0.0.1:${process.env.BX_REDIS_PORT}`,
    '--prefix', process.env.BX_REDIS_PREFIX, '--channel', '/service/upper', '--consumer', 'official'], { stdio: 'ignore' });
  try {
    const c = clients.make();
    await handshake(c, { ext: { token: jwt({ sub: 'otto', exp: inAMinute() }) } });
    const echo = await remoteCall(c, 'echo', { a: [1, 'b'] });
    assert.equal(echo.successful, true, JSON.stringify(echo));
    assert.deepEqual(echo.data, { a: [1, 'b'] });
    const up = await remoteCall(c, 'upper', { text: 'official' }, 5000);
    assert.equal(up.successful, true, JSON.stringify(up));
    assert.deepEqual(up.data, { text: 'OFFICIAL', user: 'otto', by: 'official' }, 'the service sees the token\'s user');
  } finally {
    svc.kill('SIGTERM');
  }
});

test('a bad token: the official client gets 403::handshake_denied and does not retry', async () => {
  const c = clients.make();
  const failures = [];
  c.addListener('/meta/handshake', (m) => { if (!m.successful) failures.push(m); });
  await assert.rejects(handshake(c, { ext: { token: jwt({ sub: 'x', exp: inAMinute() }, { key: 'wrong-secret-0123456789' }) } }),
    /403::handshake_denied/);
  await sleep(1500);
  assert.equal(failures.length, 1, 'reconnect none: no second handshake');
  assert.equal(failures[0].advice?.reconnect, 'none');
});

test('a denied subscribe never receives what is published afterwards', async () => {
  const ch = `/secret/${uniq()}`;
  const anon = clients.make();
  const admin = clients.make();
  await handshake(anon);
  await handshake(admin, { ext: { token: jwt({ sub: 'ada', roles: 'admin', exp: inAMinute() }) } });
  const leak = new Inbox('anon');
  const err = await subscribe(anon, ch, leak.fn).then(() => null, (e) => e);
  assert.ok(err, 'the subscribe failed');
  assert.equal(err.reply.error, '403:denied_by_security_policy:subscribe_denied');
  const got = new Inbox('admin');
  await subscribe(admin, ch, got.fn);
  await publish(admin, ch, { n: 1 });
  await got.waitFor(1);
  await sleep(500);
  assert.deepEqual(leak.msgs, []);
});

test('chat: members list on /members/<room> and a private message that reaches only its target', async () => {
  const room = uniq();
  const [a, b, c] = [clients.make(), clients.make(), clients.make()];
  const chats = new Map();
  for (const [cl, name] of [[a, 'ann'], [b, 'ben'], [c, 'cyd']]) {
    await handshake(cl);
    const box = new Inbox(name);
    chats.set(name, box);
    await subscribe(cl, `/chat/${room}`, box.fn);
  }
  const lists = new Inbox('members');
  await subscribe(a, `/members/${room}`, lists.fn);
  for (const [cl, name] of [[a, 'ann'], [b, 'ben'], [c, 'cyd']]) await publish(cl, '/service/members', { room: `/chat/${room}`, user: name });
  await waitUntil(() => lists.data().some((l) => l.length === 3), 10000, 'three members');
  assert.deepEqual(lists.data().at(-1), ['ann', 'ben', 'cyd']);
  await publish(a, '/service/privatechat', { room: `/chat/${room}`, user: 'ann', chat: 'psst', peer: 'cyd' });
  await chats.get('cyd').waitFor(1);
  await chats.get('ann').waitFor(1);
  await sleep(500);
  assert.deepEqual(chats.get('cyd').data(), [{ chat: 'psst', user: 'ann', scope: 'private' }]);
  assert.deepEqual(chats.get('ann').data(), [{ chat: 'psst', user: 'ann', scope: 'private' }]);
  assert.deepEqual(chats.get('ben').msgs, [], 'ben gets nothing');
  // ben leaves (disconnect): the list shrinks
  await new Promise((r) => b.disconnect(r));
  await waitUntil(() => JSON.stringify(lists.data().at(-1)) === JSON.stringify(['ann', 'cyd']), 10000, 'ben gone from the list');
});
