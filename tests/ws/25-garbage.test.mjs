// Seeded garbage after a valid upgrade (random bytes, any opcode, masked or not, cut frames, split writes):
// 200 connections, then the server must still serve a fresh session and the bystander of this file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { URL } from 'node:url';
import { BASE, frame, roundTrip, subscriber, Client, unique } from './lib.mjs';

let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
const HEAD = 'GET /cometd HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
             'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
const MSGS = ['[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]',
  '[{"channel":"/meta/connect","clientId":"x","connectionType":"websocket"}]', '[{"channel":"/a","data":1}]',
  '[', '{}', '[{"channel":"/meta/subscribe"}]'];

function garbage(port, host) {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('close', resolve);
    s.on('connect', () => {
      const parts = [Buffer.from(HEAD)];
      for (let k = 0; k < 1 + rnd(6); k++) {
        const kind = rnd(5);
        if (kind === 0) parts.push(Buffer.from(Array.from({ length: rnd(64) }, () => rnd(256))));
        else if (kind === 1) parts.push(frame(rnd(16), MSGS[rnd(MSGS.length)], { fin: rnd(3) > 0, mask: rnd(8) > 0 }));
        else if (kind === 2) { const f = frame(1, MSGS[rnd(MSGS.length)]); parts.push(f.subarray(0, rnd(f.length))); }
        else if (kind === 3) parts.push(frame(9, 'p'));
        else parts.push(frame(1, MSGS[rnd(MSGS.length)]));
      }
      const all = Buffer.concat(parts);
      let off = 0;
      const step = () => {
        if (off >= all.length) { setTimeout(() => s.destroy(), 50 + rnd(200)); return; }
        const n = 1 + rnd(40);
        s.write(all.subarray(off, off + n));
        off += n;
        setTimeout(step, rnd(3));
      };
      step();
    });
    setTimeout(() => { s.destroy(); resolve(); }, 3000);
  });
}

test('200 connections of seeded garbage through nginx disturb nobody', { timeout: 60000 }, async () => {
  const ch = `/garbage/${unique()}`;
  const bystander = await subscriber(ch);
  bystander.autoConnect = true; // keeps a connect held however long the garbage takes
  const u = new URL(BASE);
  for (let b = 0; b < 4; b++) await Promise.all(Array.from({ length: 50 }, () => garbage(Number(u.port), u.hostname)));
  await roundTrip();
  const p = await Client.open();
  await p.handshake();
  await p.publish(ch, { after: 'garbage' });
  const d = await bystander.next((m) => m.channel === ch && m.data && m.data.after, 5000, 'bystander delivery');
  assert.ok(d);
  await p.close();
  bystander.autoConnect = false;
  await bystander.close();
});
