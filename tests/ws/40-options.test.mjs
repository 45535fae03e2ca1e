// ws.* options that need their own bayeux-ws: a second one started here, straight on a free port
// (same broker, same configuration file + BX_* overrides), stopped with SIGTERM at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import net from 'node:net';
import { Client, sleep } from './lib.mjs';

let proc, url;

const freePort = () => new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => r(port)); }); });

before(async () => {
  const port = await freePort();
  url = `ws://127.0.0.1:${port}/cometd`;
  const log = openSync(`${process.env.BX_STACK_DIR}/ws-options.log`, 'a');
  proc = spawn(process.env.BX_STACK_WS_BIN, ['-c', process.env.BX_STACK_CONF, '-l', `127.0.0.1:${port}`], {
    env: { ...process.env, BX_WS_REQUIRE_HANDSHAKE_PER_CONNECTION: 'true' }, stdio: ['ignore', log, log],
  });
  for (let i = 0; i < 100; i++) {
    if (await new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); })) return;
    await sleep(50);
  }
  throw new Error('the second bayeux-ws did not start');
});

after(async () => {
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  proc.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, sig: null }, 'clean exit on SIGTERM');
});

test('ws.requireHandshakePerConnection: a new connection cannot continue a session by clientId', async () => {
  const a = await Client.open(url);
  await a.handshake();
  await a.connectFirst(); // its own session works on its own connection
  const b = await Client.open(url);
  const r = await b.call({ channel: '/meta/connect', clientId: a.clientId, connectionType: 'websocket' });
  assert.equal(r.successful, false);
  assert.equal(r.error, '402::session_unknown');
  assert.equal(r.advice.reconnect, 'handshake');
  const p = await b.call({ channel: '/some/where', clientId: a.clientId, data: 1 });
  assert.equal(p.error, '402::session_unknown');
  await b.handshake(); // after its own handshake it is served
  const ok = await b.call({ channel: '/meta/connect', clientId: b.clientId, connectionType: 'websocket', advice: { timeout: 0 } });
  assert.equal(ok.successful, true);
  await a.close();
  await b.close();
});
