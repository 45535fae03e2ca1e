// All workers stopped and started again while clients stay connected: the clients recover
// with the same sessions and nothing that was queued for them is lost.
// Needs the private stack of tests/e2e/run.sh: BX_E2E_STACK_DIR and BX_E2E_WORKERS.
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  TRANSPORTS, SERVER_URL, Clients, Inbox, handshake, subscribe, publish, sleep, uniq, rawPost,
} from './lib/bayeux.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STACK_DIR = process.env.BX_E2E_STACK_DIR;
const WORKERS = parseInt(process.env.BX_E2E_WORKERS || '0', 10);

function stack(...args) {
  // Restarted workers take their settings from the stack dir; keep our own BX_E2E_* out of their environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BX_E2E_')));
  execFileSync('bash', [path.join(ROOT, 'scripts/stack.sh'), ...args], { env, stdio: ['ignore', 'inherit', 'inherit'] });
}
function allWorkers(cmd) {
  assert.ok(STACK_DIR && WORKERS > 0, 'this test needs the private stack of tests/e2e/run.sh (BX_E2E_STACK_DIR, BX_E2E_WORKERS)');
  for (let i = 1; i <= WORKERS; i++) stack(cmd, STACK_DIR, String(i));
}


// Until nginx passes requests to a worker again (after failures it rests an upstream for
// fail_timeout): a stateless probe, a connect with an unknown clientId, must get Bayeux's 402.
async function waitServing(ms = 20000) {
  const t0 = Date.now();
  for (;;) {
    const r = await rawPost(SERVER_URL, {}, [{ channel: '/meta/connect', clientId: 'probe', connectionType: 'long-polling' }])
      .catch(e => ({ status: 0, error: e.message }));
    if (r.status === 200) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`server not serving ${ms} ms after the restart: HTTP ${r.status} ${r.error || ''}`);
    await sleep(200);
  }
}

for (const transport of TRANSPORTS) {
  describe(`worker restart over ${transport}`, () => {
    const clients = new Clients();
    afterEach(() => clients.closeAll());

    test('all workers stopped and restarted: clients recover, nothing queued is lost', { timeout: 90000 }, async () => {
      await waitServing();
      const ch = `/e2e/${uniq()}/restart`;
      const sub = clients.make({ transport }); const pub = clients.make({ transport });
      const ids = { sub: [], pub: [] };
      sub.addListener('/meta/handshake', m => m.successful && ids.sub.push(m.clientId));
      pub.addListener('/meta/handshake', m => m.successful && ids.pub.push(m.clientId));
      await Promise.all([handshake(sub), handshake(pub)]);
      const inbox = new Inbox('restart');
      await subscribe(sub, ch, inbox.fn);
      // A burst acknowledged by the server right before the workers go away.
      const burst = [];
      for (let i = 0; i < 100; i++) burst.push(publish(pub, ch, { i }));
      await Promise.all(burst);
      allWorkers('worker-stop');
      await sleep(1000); // both clients see failed polls and back off
      allWorkers('worker-start');
      const waited = await waitServing();
      if (waited > 0) console.log(`# nginx passed requests again ${waited} ms after the workers were back`);
      // Published while the subscriber is still backing off: must wait in its queue.
      for (let i = 100; i < 150; i++) await publish(pub, ch, { i });
      await inbox.waitFor(150, 40000);
      await sleep(500);
      const got = inbox.data().map(d => d.i);
      const missing = [...Array(150).keys()].filter(i => !got.includes(i));
      assert.deepEqual(missing, [], 'nothing lost');
      assert.equal(got.length, 150, 'no duplicates: ' + got.length);
      assert.deepEqual(got, [...Array(150).keys()], 'in order');
      assert.equal(ids.sub.length, 1, 'the subscriber kept its session (no re-handshake)');
      assert.equal(ids.pub.length, 1, 'the publisher kept its session (no re-handshake)');
      // And the connection is live again for new traffic.
      await publish(pub, ch, { i: 150 });
      await inbox.waitFor(151, 10000);
    });
  });
}
