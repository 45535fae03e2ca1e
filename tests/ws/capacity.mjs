// Capacity measurement (not a test: nothing here is asserted on time): N WebSocket connections to one
// bayeux-ws, each with a Bayeux session holding a /meta/connect; reports the server's RSS and file
// descriptors per connection, then checks that a publish still reaches a sample of them.
//   node tests/ws/capacity.mjs --url ws://127.0.0.1:8090/cometd --pid <bayeux-ws pid> [--n 10000] [--plain]
// --plain: open sockets only (no Bayeux session). Needs `ulimit -n` above N on both sides.
import WebSocket from 'ws';
import { readFileSync, readdirSync } from 'node:fs';

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1] : d; };
const URL_ = arg('url', 'ws://127.0.0.1:8090/cometd');
const N = Number(arg('n', 10000));
const PID = arg('pid');
const PLAIN = process.argv.includes('--plain');
const CONCURRENCY = 200;

const rssKb = () => PID ? Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${PID}/status`, 'utf8'))[1]) : NaN;
const fds = () => PID ? readdirSync(`/proc/${PID}/fd`).length : NaN;
const cpuS = () => { if (!PID) return NaN; const f = readFileSync(`/proc/${PID}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };

let seq = 0;
function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL_, { perMessageDeflate: false });
    const c = { ws, n: 0, got: [] };
    const send = (m) => ws.send(JSON.stringify([{ ...m, id: String(++seq) }]));
    ws.on('error', reject);
    ws.on('message', (d) => {
      for (const m of JSON.parse(d)) {
        if (m.channel === '/meta/handshake') {
          c.cid = m.clientId;
          send({ channel: '/meta/connect', clientId: c.cid, connectionType: 'websocket', advice: { timeout: 0 } });
        } else if (m.channel === '/meta/connect') {
          if (c.n++ === 0) send({ channel: '/meta/subscribe', clientId: c.cid, subscription: '/cap/all' });
          send({ channel: '/meta/connect', clientId: c.cid, connectionType: 'websocket' });
        } else if (m.channel === '/meta/subscribe') {
          resolve(c);
        } else if (m.channel === '/cap/all' && m.data) {
          c.got.push(m.data);
        }
      }
    });
    ws.on('open', () => {
      if (PLAIN) return resolve(c);
      send({ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] });
    });
  });
}

const base = { rss: rssKb(), fds: fds(), cpu: cpuS() };
const t0 = Date.now();
const conns = [];
for (let i = 0; i < N; i += CONCURRENCY) {
  const batch = await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N - i) }, open));
  conns.push(...batch);
}
const openMs = Date.now() - t0;
await new Promise((r) => setTimeout(r, 2000));
const at = { rss: rssKb(), fds: fds(), cpu: cpuS() };
const alive = conns.filter((c) => c.ws.readyState === WebSocket.OPEN).length;
let reached = NaN;
if (!PLAIN) {
  // one publish from the first session to everyone: every held connect is woken and answered
  conns[0].ws.send(JSON.stringify([{ channel: '/cap/all', clientId: conns[0].cid, data: { x: 1 }, id: 'p' }]));
  const t1 = Date.now();
  while (Date.now() - t1 < 30000 && conns.some((c) => !c.got.length)) await new Promise((r) => setTimeout(r, 200));
  reached = conns.filter((c) => c.got.length).length;
  console.log(`publish to all ${N}: ${reached} received within ${Date.now() - t1} ms`);
}
console.log(JSON.stringify({
  connections: N, mode: PLAIN ? 'plain sockets' : 'sessions with a held /meta/connect', alive, reached, openMs,
  serverRssMiB: +(at.rss / 1024).toFixed(1), rssPerConnKiB: +((at.rss - base.rss) / N).toFixed(2),
  serverFds: at.fds, serverCpuS: +(at.cpu - base.cpu).toFixed(2),
}));
for (const c of conns) c.ws.terminate();
process.exit(0);
