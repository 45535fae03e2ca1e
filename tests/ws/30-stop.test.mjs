// SIGTERM: every socket closed with 1001; while bayeux-ws is down an upgrade gets 502 (the CometD client
// then falls back to long-polling); messages queued meanwhile reach the session on its next connection,
// over websocket again or over long-polling with the browser cookie bayeux-ws set on the upgrade.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client, LongPoll, CFG, rawUpgrade, roundTrip, subscriber, unique } from './lib.mjs';

const run = promisify(execFile);
const stack = (cmd) => run('bash', [`${process.env.BX_ROOT}/scripts/stack.sh`, cmd, process.env.BX_STACK_DIR]);

test('SIGTERM closes with 1001; queued messages survive the restart; 502 while down', async () => {
  const ch = `/stop/${unique()}`;
  const a = await subscriber(ch);
  const idle = await Client.open(); // no session at all: closed the same way
  const t0 = Date.now();
  await stack('ws-stop');
  const [ca, ci] = await Promise.all([a.closed, idle.closed]);
  assert.equal(ca.code, 1001);
  assert.equal(ci.code, 1001);
  assert.ok(Date.now() - t0 < 5000, 'bayeux-ws stopped within its grace time');

  const { sock, status } = await rawUpgrade();
  sock.destroy();
  assert.equal(status, 502, 'nginx answers upgrades with 502 while bayeux-ws is down');

  const lp = new LongPoll();
  await lp.handshake();
  const [pr] = await lp.post([{ channel: ch, clientId: lp.clientId, data: { queued: true } }]);
  assert.equal(pr.successful, true);

  await stack('ws-start');
  const b = await Client.open();
  b.clientId = a.clientId;
  const r = await b.call({ channel: '/meta/connect', clientId: a.clientId, connectionType: 'websocket' }, CFG.timeout + 2000);
  assert.equal(r.successful, true, JSON.stringify(r));
  const d = b.frames.flat().find((m) => m.channel === ch && m.data && m.data.queued);
  assert.ok(d, `the message published while bayeux-ws was down arrives: ${JSON.stringify(b.frames)}`);
  await b.close();
  await roundTrip();
});

test('a websocket session falls back to long-polling with the cookie of its upgrade, queue intact', async () => {
  const ch = `/fallback/${unique()}`;
  const a = await subscriber(ch);
  assert.equal(a.setCookie.length, 1, 'the 101 sets the browser cookie');
  assert.match(a.setCookie[0], /^BAYEUX_BROWSER=[0-9a-z]+; Path=\/; HttpOnly/);
  const again = await Client.open(undefined, { headers: { Cookie: a.setCookie[0].split(';')[0] } });
  assert.equal(again.setCookie.length, 0, 'a browser that has the cookie keeps it');
  await again.close();
  await stack('ws-stop');
  assert.equal((await a.closed).code, 1001);
  const pub = new LongPoll();
  await pub.handshake();
  await pub.post([{ channel: ch, clientId: pub.clientId, data: { during: 'outage' } }]);
  const lp = new LongPoll();
  lp.clientId = a.clientId;
  lp.cookie = a.setCookie[0].split(';')[0];
  const got = await lp.connect();
  assert.ok(got.some((m) => m.channel === ch && m.data && m.data.during === 'outage'), JSON.stringify(got));
  const reply = got.find((m) => m.channel === '/meta/connect');
  assert.equal(reply.successful, true, JSON.stringify(reply));
  const stranger = new LongPoll();
  stranger.clientId = a.clientId;
  stranger.cookie = 'BAYEUX_BROWSER=someoneelse0000000';
  const [denied] = await stranger.connect();
  assert.equal(denied.error, '402::session_unknown', 'another browser cannot take the session over HTTP');
  await stack('ws-start');
  await roundTrip();
});
