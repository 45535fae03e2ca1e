// tests/systemd/client.mjs — run by tests/systemd/boot.sh inside the booted container, against the
// site nginx serves there (BX_E2E_URL). The official CometD client (tests/e2e's npm packages).
//   node client.mjs roundtrip       one long-polling and one websocket client subscribe to one channel
//                                   and publish to each other; both must get both messages
//   node client.mjs load SECONDS    a long-polling subscriber (ack extension) and a publisher at 20/s
//                                   for SECONDS while boot.sh restarts the workers; prints and checks
//                                   0 lost, 0 reordered, no failed publish, no failed /meta/connect
import { newClient, handshake, subscribe, publish, disconnect, Inbox, uniq, sleep, waitUntil } from '../e2e/lib/bayeux.mjs';

const fail = (msg) => { console.error(`client: FAIL: ${msg}`); process.exit(1); };

// Failed /meta/* replies a client saw (a restart must not show any).
function watch(c, name, errors) {
  c.addListener('/meta/unsuccessful', (m) => errors.push(`${name} ${m.channel}: ${JSON.stringify(m.failure?.reason ?? m.error ?? m)}`));
}

async function roundtrip() {
  const errors = [];
  const lp = newClient({ transport: 'long-polling' });
  const ws = newClient({ transport: 'websocket' });
  watch(lp, 'long-polling', errors);
  watch(ws, 'websocket', errors);
  await handshake(lp);
  await handshake(ws);
  if (ws.getTransport().type !== 'websocket') fail(`websocket client runs ${ws.getTransport().type}`);
  const ch = `/systemd/${uniq()}`;
  const inLp = new Inbox('long-polling'), inWs = new Inbox('websocket');
  await subscribe(lp, ch, inLp.fn);
  await subscribe(ws, ch, inWs.fn);
  await publish(lp, ch, { from: 'long-polling' });
  await publish(ws, ch, { from: 'websocket' });
  await inLp.waitFor(2, 5000);
  await inWs.waitFor(2, 5000);
  await disconnect(lp);
  await disconnect(ws);
  if (errors.length) fail(errors.join('; '));
  console.log(`client: roundtrip ok: long-polling got ${JSON.stringify(inLp.data())}, websocket got ${JSON.stringify(inWs.data())}`);
}

async function load(seconds) {
  const errors = [];
  const sub = newClient({ transport: 'long-polling', ack: true });
  const pub = newClient({ transport: 'long-polling' });
  watch(sub, 'subscriber', errors);
  watch(pub, 'publisher', errors);
  await handshake(sub);
  await handshake(pub);
  const ch = `/systemd/${uniq()}`;
  const inbox = new Inbox('subscriber');
  await subscribe(sub, ch, inbox.fn);
  console.log('client: load running');
  const acked = [];
  const end = Date.now() + seconds * 1000;
  for (let seq = 1; Date.now() < end; seq++) {
    try {
      await publish(pub, ch, { seq });
      acked.push(seq);
    } catch (e) {
      errors.push(`publish ${seq}: ${e.message}`);
    }
    await sleep(50);
  }
  await waitUntil(() => inbox.msgs.length >= acked.length, 10000, `${acked.length} deliveries`).catch(() => {});
  const got = inbox.data().map((d) => d.seq);
  const lost = acked.filter((s) => !got.includes(s)).length;
  const reordered = got.filter((s, i) => i > 0 && s <= got[i - 1]).length;
  await disconnect(sub);
  await disconnect(pub);
  console.log(`client: load: ${acked.length} published, ${got.length} delivered, ${lost} lost, ${reordered} reordered or duplicated, ${errors.length} errors`);
  if (errors.length) fail(errors.slice(0, 5).join('; '));
  if (lost || reordered || !acked.length) fail('deliveries incomplete');
}

const [mode, arg] = process.argv.slice(2);
try {
  if (mode === 'roundtrip') await roundtrip();
  else if (mode === 'load') await load(Number(arg) || 10);
  else fail('usage: client.mjs roundtrip | load SECONDS');
} catch (e) {
  fail(e.message);
}
process.exit(0);
