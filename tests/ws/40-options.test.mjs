// Options that need their own bayeux-ws: one started here per case, straight on a free port (same broker,
// same configuration file + BX_* overrides), stopped with SIGTERM at the end of the case (clean exit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { openSync } from 'node:fs';
import net from 'node:net';
import { Client, sleep } from './lib.mjs';

const freePort = () => new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => r(port)); }); });
const accepts = (port) => new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });

async function startWs(name, env) {
  const port = await freePort();
  const log = openSync(`${process.env.BX_STACK_DIR}/ws-${name}.log`, 'a');
  const proc = spawn(process.env.BX_STACK_WS_BIN, ['-c', process.env.BX_STACK_CONF, '-l', `127.0.0.1:${port}`], {
    env: { ...process.env, ...env }, stdio: ['ignore', log, log],
  });
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  for (let i = 0; i < 100 && !(await accepts(port)); i++) await sleep(50);
  return {
    url: `ws://127.0.0.1:${port}/cometd`,
    async stop() {
      proc.kill('SIGTERM');
      assert.deepEqual(await exited, { code: 0, sig: null }, `bayeux-ws (${name}) exits cleanly on SIGTERM`);
    },
  };
}

test('ws.requireHandshakePerConnection: a new connection cannot continue a session by clientId', async () => {
  const ws = await startWs('handshake-per-connection', { BX_WS_REQUIRE_HANDSHAKE_PER_CONNECTION: 'true' });
  try {
    const a = await Client.open(ws.url);
    await a.handshake();
    await a.connectFirst(); // its own session works on its own connection
    const b = await Client.open(ws.url);
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
  } finally {
    await ws.stop();
  }
});

const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
function jwt(secret, claims) {
  const body = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('the upgrade\'s Authorization: Bearer header authenticates handshakes on that socket', async () => {
  const secret = 'ws-test-secret-0123456789';
  const ws = await startWs('jwt', { BX_JWT_ALGORITHM: 'HS256', BX_JWT_SECRET: secret, BX_JWT_REQUIRED: 'true' });
  try {
    const token = jwt(secret, { sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 });
    const good = await Client.open(ws.url, { headers: { Authorization: `Bearer ${token}` } });
    const hs = await good.call({ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] });
    assert.equal(hs.successful, true, JSON.stringify(hs));
    await good.close();
    const forged = await Client.open(ws.url, { headers: { Authorization: `Bearer ${jwt('another-secret-0123456789', { sub: 'eve' })}` } });
    const bad = await forged.call({ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] });
    assert.equal(bad.successful, false);
    assert.equal(bad.error, '403::handshake_denied');
    await forged.close();
    const none = await Client.open(ws.url);
    const anon = await none.call({ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] });
    assert.equal(anon.error, '403::handshake_denied', 'jwtRequired: no token, no session');
    await none.close();
  } finally {
    await ws.stop();
  }
});
