// Built-in services (shared/services/): echo, room membership, private chat — raw Bayeux through nginx,
// two workers, one Redis. CometD's ChatService semantics: /service/members {room:"/chat/<r>", user}
// records the member and publishes the sorted member list on /members/<r>; /service/privatechat
// delivers {chat, user, scope:"private"} on /chat/<r> to the named peer and back to the sender only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CFG, Client, connectReply, deliveries, replyTo, sleep, unique } from '../integration/lib/bayeux.mjs';

// Everything queued for c right now (a connect that is not held).
async function drainNow(c) {
  await sleep(250);
  const res = await c.connect({ advice: { timeout: 0 } });
  assert.equal(res.status, 200, res.text);
  assert.equal(connectReply(res).successful, true, res.text);
  return deliveries(res);
}

async function publishRaw(c, msg) {
  const res = await c.post([{ clientId: c.clientId, id: c.nextId(), ...msg }]);
  assert.equal(res.status, 200, res.text);
  return res;
}

// Member lists seen on /members/<room> by c, in order.
async function memberLists(c, room) {
  return (await drainNow(c)).filter((m) => m.channel === `/members/${room}`).map((m) => m.data);
}

async function join(c, room, user) {
  const r = await c.publish('/service/members', { room: `/chat/${room}`, user });
  assert.equal(r.successful, true, JSON.stringify(r));
}

test('echo: a remote call gets its data back in the same response, nobody else gets it', async () => {
  const a = await new Client('a').ready();
  const b = await new Client('b').ready();
  assert.equal((await b.subscribe('/service/**')).successful, true); // service channels never broadcast
  const res = await publishRaw(a, { channel: '/service/echo', data: { n: [1, 2, 'x'] }, id: '77' });
  const result = res.json.find((m) => m.channel === '/service/echo' && m.id === '77' && 'data' in m);
  assert.ok(result, res.text);
  assert.equal(result.successful, true);
  assert.deepEqual(result.data, { n: [1, 2, 'x'] });
  assert.equal((await drainNow(b)).length, 0);
});

test('members: joins publish the sorted member list; a disconnect removes the member and publishes again', async () => {
  const room = unique('r');
  const watcher = await new Client('watcher').ready();
  assert.equal((await watcher.subscribe(`/members/${room}`)).successful, true);
  const bob = await new Client('bob').ready();
  const alice = await new Client('alice').ready();
  await join(bob, room, 'bob');
  await join(alice, room, 'alice');
  assert.deepEqual(await memberLists(watcher, room), [['bob'], ['alice', 'bob']]);
  // the joiners see the list too once subscribed (wildcard subscriptions count)
  assert.equal((await alice.subscribe('/members/*')).successful, true);
  assert.equal((await bob.disconnect()).successful, true);
  assert.deepEqual(await memberLists(watcher, room), [['alice']]);
  assert.deepEqual(await memberLists(alice, room), [['alice']]);
  // joining again under the same name from another session takes the name over (CometD's put)
  const alice2 = await new Client('alice2').ready();
  await join(alice2, room, 'alice');
  assert.deepEqual(await memberLists(watcher, room), [['alice']]);
  // the old holder leaving does not remove the name it no longer holds
  assert.equal((await alice.disconnect()).successful, true);
  assert.deepEqual(await memberLists(watcher, room), []);
  assert.equal((await alice2.disconnect()).successful, true);
  assert.deepEqual(await memberLists(watcher, room), [[]]);
});

test('members: a session that expires (never polls again) leaves its rooms', async () => {
  const room = unique('r');
  const watcher = await new Client('watcher').ready();
  assert.equal((await watcher.subscribe(`/members/${room}`)).successful, true);
  const ghost = await new Client('ghost').ready();
  await join(ghost, room, 'ghost');
  assert.deepEqual(await memberLists(watcher, room), [['ghost']]);
  // ghost stops polling: after maxInterval the sweep removes it and the list is published empty
  const end = Date.now() + CFG.maxInterval + CFG.timeout + 8000;
  let lists = [];
  while (Date.now() < end && !lists.some((l) => l.length === 0)) {
    const res = await watcher.connect();
    // (a list seen before may come again: without the ack extension a redelivery is possible)
    lists = deliveries(res).filter((m) => m.channel === `/members/${room}`).map((m) => m.data);
  }
  assert.deepEqual(lists.filter((l) => l.length === 0), [[]], `the expired member left the room: ${JSON.stringify(lists)}`);
});

test('privatechat: reaches only the named peer (and the sender its copy)', async () => {
  const room = unique('r');
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => new Client(n).ready()));
  for (const [cl, name] of [[a, 'ann'], [b, 'ben'], [c, 'cid']]) {
    assert.equal((await cl.subscribe(`/chat/${room}`)).successful, true);
    await join(cl, room, name);
  }
  await Promise.all([a, b, c].map(drainNow));
  const res = await publishRaw(a, { channel: '/service/privatechat', id: 'p1',
    data: { room: `/chat/${room}`, user: 'ann', chat: 'psst', peer: 'ben' } });
  assert.equal(replyTo(res, 'p1').successful, true, res.text);
  const want = { chat: 'psst', user: 'ann', scope: 'private' };
  const gotB = (await drainNow(b)).filter((m) => m.channel === `/chat/${room}`);
  assert.deepEqual(gotB.map((m) => m.data), [want]);
  const gotA = (await drainNow(a)).filter((m) => m.channel === `/chat/${room}`);
  assert.deepEqual(gotA.map((m) => m.data), [want], 'the sender gets its copy');
  assert.deepEqual((await drainNow(c)).filter((m) => m.channel === `/chat/${room}`), [], 'a bystander gets nothing');
  // an unknown peer: nothing delivered to anyone, still a successful publish (as CometD)
  const res2 = await publishRaw(a, { channel: '/service/privatechat', id: 'p2',
    data: { room: `/chat/${room}`, user: 'ann', chat: 'x', peer: 'nobody' } });
  assert.equal(replyTo(res2, 'p2').successful, true, res2.text);
  for (const cl of [a, b, c]) assert.deepEqual((await drainNow(cl)).filter((m) => m.channel === `/chat/${room}`), []);
});

test('bad input: malformed service data is an error reply to the caller, unknown sessions get 402', async () => {
  const a = await new Client('a').ready();
  for (const data of [undefined, 'x', { room: '/chat/a b', user: 'u' }, { room: '/chat/ok' }, { room: '/chat/ok', user: '' },
    { room: '/chat/ok', user: 'x'.repeat(300) }, { room: `/chat/${'r'.repeat(65)}`, user: 'u' }, { room: 5, user: 'u' }]) {
    const r = await a.publish('/service/members', data);
    assert.equal(r.successful, false, JSON.stringify(data));
    assert.equal(r.error, '400::data_invalid', JSON.stringify(data));
  }
  const r = await a.publish('/service/privatechat', { room: '/chat/ok', user: 'u', peer: 'p' });
  assert.equal(r.error, '400::data_invalid');
  const ghost = new Client('ghost');
  ghost.clientId = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const res = await publishRaw(ghost, { channel: '/service/members', id: 'g1', data: { room: '/chat/x', user: 'u' } });
  assert.equal(replyTo(res, 'g1').error, '402::session_unknown', res.text);
  // the worker is still fine
  const res2 = await publishRaw(a, { channel: '/service/echo', id: 'e1', data: 1 });
  assert.ok(res2.json.find((m) => m.id === 'e1' && m.data === 1), res2.text);
});
