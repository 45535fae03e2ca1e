// permessage-deflate (RFC 7692): negotiated when the client offers it (ws.enableExtension.permessage-deflate,
// default true), messages compressed both ways, and a compressed message that inflates past
// ws.maxMessageSize closes with 1009 without being inflated whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { Client, CFG, WS_URL, direct, frame, roundTrip, sleep, unique, upgradeHead } from './lib.mjs';

const TAIL = Buffer.from([0, 0, 0xff, 0xff]);
// RFC 7692 §7.2.1: deflate, end on an empty stored block (sync flush), drop its last 4 bytes 00 00 ff ff.
const compress = (text) => {
  const z = zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual(z.subarray(-4), TAIL);
  return z.subarray(0, z.length - 4);
};
// The other form §7.2.1 allows: a final block, then the empty stored block's first byte.
const compressFinal = (text) => Buffer.concat([zlib.deflateRawSync(Buffer.from(text)), Buffer.from([0])]);

// Server frames from a raw socket: {rsv1, op, payload}; compressed text payloads are inflated.
function serverFrames(buf) {
  const out = [];
  let off = 0;
  while (buf.length - off >= 2) {
    const b0 = buf[off], b1 = buf[off + 1];
    let len = b1 & 127, h = 2;
    if (len === 126) { if (buf.length - off < 4) break; len = buf.readUInt16BE(off + 2); h = 4; }
    else if (len === 127) { if (buf.length - off < 10) break; len = Number(buf.readBigUInt64BE(off + 2)); h = 10; }
    if (buf.length - off < h + len) break;
    const payload = buf.subarray(off + h, off + h + len);
    const rsv1 = (b0 & 0x40) !== 0, op = b0 & 15;
    out.push({ rsv1, op, text: op === 1 ? (rsv1 ? zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }) : payload).toString() : null,
      code: op === 8 && len >= 2 ? payload.readUInt16BE(0) : undefined });
    off += h + len;
  }
  return out;
}

// A raw connection straight to bayeux-ws that offered permessage-deflate: {d, head, frames()}.
async function deflateSocket(offer = 'permessage-deflate; client_max_window_bits') {
  const d = await direct();
  d.sock.removeAllListeners('data');
  d.buf = Buffer.alloc(0);
  d.sock.on('data', (b) => { d.buf = Buffer.concat([d.buf, b]); });
  d.sock.write(upgradeHead(`Sec-WebSocket-Extensions: ${offer}\r\n`));
  for (let t = 0; t < 300 && d.buf.indexOf('\r\n\r\n') < 0; t++) await sleep(10);
  const end = d.buf.indexOf('\r\n\r\n');
  assert.ok(end > 0, 'upgrade response');
  d.head = d.buf.subarray(0, end).toString();
  d.buf = d.buf.subarray(end + 4);
  d.frames = () => serverFrames(d.buf);
  d.until = async (pred, what, ms = 3000) => {
    for (let t = 0; t < ms / 10 && !d.frames().some(pred); t++) await sleep(10);
    const f = d.frames().find(pred);
    assert.ok(f, what);
    return f;
  };
  return d;
}

test('permessage-deflate offered by the npm ws client is negotiated; messages round-trip', async () => {
  const c = await Client.open(WS_URL, { perMessageDeflate: { threshold: 0 } });
  assert.equal(c.ws.extensions, 'permessage-deflate', 'through nginx');
  await c.handshake();
  await c.connectFirst();
  const ch = `/deflate/${unique()}`;
  await c.subscribe(ch);
  c.connect();
  const big = 'compressible '.repeat(2000);
  await c.publish(ch, big);
  const d = await c.next((m) => m.channel === ch, 3000, 'delivery');
  assert.equal(d.data, big);
  await c.close();
});

test('compressed frames both ways on the wire (RSV1), no context takeover announced', async () => {
  const d = await deflateSocket();
  assert.match(d.head, /^HTTP\/1\.1 101 /);
  assert.match(d.head, /\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r?$/m);
  const send = (msgs) => d.sock.write(frame(1, compress(JSON.stringify(msgs)), { rsv1: true }));
  send([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'], id: 'h' }]);
  const hs = await d.until((f) => f.text && f.text.includes('/meta/handshake'), 'handshake reply');
  assert.equal(hs.rsv1, true, 'the handshake reply (over 128 bytes) is compressed');
  const cid = JSON.parse(hs.text)[0].clientId;
  const ch = `/deflate/${unique()}`;
  send([{ channel: '/meta/connect', clientId: cid, connectionType: 'websocket', advice: { timeout: 0 }, id: 'c1' }]);
  send([{ channel: '/meta/subscribe', clientId: cid, subscription: ch, id: 's' }]);
  await d.until((f) => f.text && f.text.includes('"s"'), 'subscribe reply');
  send([{ channel: '/meta/connect', clientId: cid, connectionType: 'websocket', id: 'c2' }]);
  const big = 'z'.repeat(20000);
  // this one ends on a final block (also valid)
  d.sock.write(frame(1, compressFinal(JSON.stringify([{ channel: ch, clientId: cid, data: big, id: 'p' }])), { rsv1: true }));
  const del = await d.until((f) => f.text && f.text.includes(`"channel":"${ch}"`) && f.text.includes('zzz'), 'pushed delivery');
  assert.equal(del.rsv1, true);
  assert.equal(JSON.parse(del.text)[0].data, big);
  const small = d.frames().find((f) => f.text && f.text.includes('"id":"s"'));
  assert.equal(small.rsv1, false, 'a short frame goes out uncompressed');
  d.sock.destroy();
});

test('a zip bomb (inflates past ws.maxMessageSize) closes with 1009; others are not disturbed', async () => {
  const d = await deflateSocket('permessage-deflate');
  const bomb = compress(JSON.stringify([{ channel: '/x', data: ' '.repeat(64 * 1024 * 1024) }]));
  assert.ok(bomb.length < CFG.maxMessageSize, `${bomb.length} compressed bytes pass the frame limit`);
  d.sock.write(frame(1, bomb, { rsv1: true }));
  const close = await d.until((f) => f.op === 8, 'close frame');
  assert.equal(close.code, 1009);
  await roundTrip();
});

test('compressed bytes that are not deflate data close with 1007', async () => {
  const d = await deflateSocket();
  d.sock.write(frame(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), { rsv1: true }));
  const close = await d.until((f) => f.op === 8, 'close frame');
  assert.equal(close.code, 1007);
});

test('invalid UTF-8 inside a compressed text message closes with 1007', async () => {
  const d = await deflateSocket();
  d.sock.write(frame(1, compress(Buffer.from([0x5b, 0x22, 0xc3, 0x28, 0x22, 0x5d])), { rsv1: true }));
  const close = await d.until((f) => f.op === 8, 'close frame');
  assert.equal(close.code, 1007);
});

test('an offer bayeux-ws cannot honour (server_max_window_bits=8) is declined: plain frames', async () => {
  const d = await deflateSocket('permessage-deflate; server_max_window_bits=8');
  assert.match(d.head, /^HTTP\/1\.1 101 /);
  assert.doesNotMatch(d.head, /Sec-WebSocket-Extensions/i);
  d.sock.write(frame(1, compress('[]'), { rsv1: true })); // RSV1 without the extension
  const close = await d.until((f) => f.op === 8, 'close frame');
  assert.equal(close.code, 1002);
});

test('RSV1 on a control frame or on a continuation frame closes with 1002 (RFC 7692 §6.1)', async () => {
  for (const bad of [frame(9, 'x', { rsv1: true }),
    Buffer.concat([frame(1, compress('[{"channel":"/a"}]').subarray(0, 3), { rsv1: true, fin: false }),
      frame(0, compress('[{"channel":"/a"}]').subarray(3), { rsv1: true })])]) {
    const d = await deflateSocket();
    d.sock.write(bad);
    const close = await d.until((f) => f.op === 8, 'close frame');
    assert.equal(close.code, 1002);
  }
});

test('a compressed message in fragments (RSV1 on the first only) is inflated whole', async () => {
  const d = await deflateSocket();
  const z = compress(JSON.stringify([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'], id: 'fh' }]));
  d.sock.write(Buffer.concat([frame(1, z.subarray(0, 5), { rsv1: true, fin: false }), frame(0, z.subarray(5, 9), { fin: false }),
    frame(0, z.subarray(9))]));
  const hs = await d.until((f) => f.text && f.text.includes('"fh"'), 'handshake reply');
  assert.equal(JSON.parse(hs.text)[0].successful, true);
  d.sock.destroy();
});
