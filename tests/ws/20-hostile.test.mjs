// Bad input (issue 8): each case closes that one connection with the right code or status, is logged,
// and disturbs nobody else — a bystander connection opened first must still work at the end, and a
// fresh session must work after each case.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Client, CFG, closeCode, frame, rawUpgrade, roundTrip, sleep, subscriber, unique } from './lib.mjs';

const LOG = `${process.env.BX_STACK_DIR}/ws.log`;
const logText = () => readFileSync(LOG, 'utf8');
let bystander, bystanderCh, pinger;

before(async () => {
  bystanderCh = `/bystander/${unique()}`;
  bystander = await subscriber(bystanderCh);
  bystander.autoConnect = true;
  pinger = setInterval(() => bystander.ws.ping(), 1000); // stays clear of ws.idleTimeout
});

after(async () => {
  // still served: a publish from another session reaches it
  const p = await Client.open();
  await p.handshake();
  await p.publish(bystanderCh, { still: 'here' });
  const d = await bystander.next((m) => m.channel === bystanderCh && m.data && m.data.still, 5000, 'bystander delivery');
  assert.ok(d);
  await p.close();
  clearInterval(pinger);
  bystander.autoConnect = false;
  await bystander.close();
});

// An open Bayeux session over a ws client, for cases that need one.
async function session() {
  const c = await Client.open();
  await c.handshake();
  return c;
}

test('message over ws.maxMessageSize → close 1009', async () => {
  const c = await session();
  c.ws.send(JSON.stringify([{ channel: '/big', clientId: c.clientId, data: 'x'.repeat(CFG.maxMessageSize) }]));
  assert.equal((await c.closed).code, 1009);
  await roundTrip();
});

test('fragmented message whose fragments add up over the limit → close 1009', async () => {
  const { sock, status, rest } = await rawUpgrade();
  assert.equal(status, 101);
  const half = Buffer.alloc(Math.ceil(CFG.maxMessageSize / 2) + 10, 0x61);
  sock.write(Buffer.concat([frame(1, half, { fin: false }), frame(0, half, { fin: false }), frame(0, half)]));
  assert.equal(await closeCode(sock, rest), 1009);
  sock.destroy();
  await roundTrip();
});

test('text that is not JSON → close 1011', async () => {
  const c = await Client.open();
  c.ws.send('this is not json');
  assert.equal((await c.closed).code, 1011);
  assert.match(logText(), /refused \(BX_PARSE_BAD_JSON|refused \(bad_json|close 1011/i);
  await roundTrip();
});

test('JSON that is not a message batch ([] and a number) → close 1011', async () => {
  for (const body of ['[]', '42', '[1,2]']) {
    const c = await Client.open();
    c.ws.send(body);
    assert.equal((await c.closed).code, 1011, body);
  }
  await roundTrip();
});

test('binary frame → close 1003', async () => {
  const c = await session();
  c.ws.send(Buffer.from('[{"channel":"/meta/connect"}]'));
  assert.equal((await c.closed).code, 1003);
  await roundTrip();
});

test('invalid frames (unmasked, reserved opcode, RSV bit) → close 1002', async () => {
  const bad = [
    frame(1, '[]', { mask: false }),                       // clients must mask
    frame(3, 'x'),                                          // reserved data opcode
    Buffer.from([0xc1, 0x80, 1, 2, 3, 4]),                  // RSV1 without a negotiated extension
  ];
  for (const b of bad) {
    const { sock, status, rest } = await rawUpgrade();
    assert.equal(status, 101);
    sock.write(b);
    assert.equal(await closeCode(sock, rest), 1002, b.toString('hex'));
    sock.destroy();
  }
  await roundTrip();
});

test('text frame with invalid UTF-8 → close 1007', async () => {
  const { sock, status, rest } = await rawUpgrade();
  assert.equal(status, 101);
  sock.write(frame(1, Buffer.from([0x5b, 0xff, 0xfe, 0x5d])));
  assert.equal(await closeCode(sock, rest), 1007);
  sock.destroy();
  await roundTrip();
});

test('upgrade with Sec-WebSocket-Version 8 → 426 with Sec-WebSocket-Version: 13', async () => {
  const { sock, status, head } = await rawUpgrade({ 'Sec-WebSocket-Version': '8' });
  assert.equal(status, 426);
  assert.match(head, /Sec-WebSocket-Version: 13/i);
  sock.destroy();
  await assert.rejects(Client.open(undefined, { protocolVersion: 8 }), /426/);
  assert.match(logText(), /upgrade refused with HTTP 426/);
  await roundTrip();
});

test('upgrade without a valid Sec-WebSocket-Key → 400', async () => {
  for (const key of [undefined, 'short', 'dGhlIHNhbXBsZSBub25jZQ']) {
    const { sock, status } = await rawUpgrade({ 'Sec-WebSocket-Key': key });
    assert.equal(status, 400, String(key));
    sock.destroy();
  }
  await roundTrip();
});

test('a client that never reads is dropped past ws.maxOutboundBytes', async () => {
  const [host, port] = process.env.BX_WS_DIRECT.split(':');
  const sock = net.connect(Number(port), host);
  sock.on('error', () => {}); // the server resets it: that is the point
  await new Promise((r) => sock.once('connect', r));
  sock.write('GET /cometd HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
             'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  sock.write(frame(1, JSON.stringify([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] }])));
  // read the upgrade and the handshake reply, then stop reading for good
  let got = '';
  await new Promise((r) => { const f = (d) => { got += d.toString('latin1'); if (/clientId/.test(got)) { sock.off('data', f); r(); } }; sock.on('data', f); });
  sock.pause();
  const cid = /"clientId":"([a-z0-9]+)"/.exec(got)[1];
  const echo = frame(1, JSON.stringify([{ channel: '/service/echo', clientId: cid, data: 'y'.repeat(60000) }]));
  const n = Math.ceil((12 * 1024 * 1024) / echo.length); // well past the kernel's socket buffers
  const ended = new Promise((r) => sock.on('close', r));
  for (let i = 0; i < n && !sock.destroyed; i++) {
    if (!sock.write(echo)) await Promise.race([new Promise((r) => sock.once('drain', r)), sleep(200)]);
  }
  await sleep(500);
  assert.match(logText(), /client not reading: \d+ bytes pending/);
  sock.resume(); // now read: the server has closed the socket
  await Promise.race([ended, sleep(5000).then(() => assert.fail('the socket was not closed'))]);
  await roundTrip();
});

test('a connection that sends nothing for ws.idleTimeout → close 1001', async () => {
  const c = await session();
  const t0 = Date.now();
  const { code } = await c.closed;
  const ms = Date.now() - t0;
  assert.equal(code, 1001);
  assert.ok(ms >= CFG.idleTimeout - 500 && ms < CFG.idleTimeout + 3000, `closed after ${ms} ms`);
});

test('an upgrade head over 8 KiB → 400, straight to bayeux-ws (nginx has its own limit)', async () => {
  const [host, port] = process.env.BX_WS_DIRECT.split(':');
  const sock = net.connect(Number(port), host);
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  let got = '';
  sock.on('data', (d) => { got += d.toString('latin1'); });
  const closed = new Promise((r) => sock.on('close', r));
  sock.write(`GET /cometd HTTP/1.1\r\nX-Filler: ${'f'.repeat(9000)}`); // no end of head yet
  await Promise.race([closed, sleep(3000)]);
  assert.match(got, /^HTTP\/1\.1 400 /);
  assert.ok(sock.destroyed || sock.readableEnded, 'the connection is closed');
  assert.match(logText(), /upgrade refused with HTTP 400: request head too long/);
  await roundTrip();
});

test('an upgrade head written a few bytes at a time is still accepted', async () => {
  const [host, port] = process.env.BX_WS_DIRECT.split(':');
  const sock = net.connect(Number(port), host);
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  let got = '';
  sock.on('data', (d) => { got += d.toString('latin1'); });
  const head = 'GET /cometd HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
               'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
  for (let i = 0; i < head.length; i += 7) { sock.write(head.slice(i, i + 7)); await sleep(5); }
  for (let i = 0; i < 100 && !got.includes('\r\n\r\n'); i++) await sleep(20);
  assert.match(got, /^HTTP\/1\.1 101 /);
  sock.destroy();
});
