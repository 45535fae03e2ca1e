// All workers (and bayeux-ws) stopped and started again while clients stay connected: the clients recover
// with the same sessions and nothing that was queued for them is lost.
// Needs the private stack of tests/e2e/run.sh: BX_E2E_STACK_DIR and BX_E2E_WORKERS.
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  TRANSPORTS, SERVER_URL, MAX_INTERVAL, Clients, Inbox, handshake, subscribe, publish, sleep, uniq, rawPost,
} from './lib/bayeux.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STACK_DIR = process.env.BX_E2E_STACK_DIR;
const WORKERS = parseInt(process.env.BX_E2E_WORKERS || '0', 10);

// stack.sh CMD ARGS..., asynchronously (stops run in parallel: each one waits for its process to go).
function stack(...args) {
  // Restarted workers take their settings from the stack dir; keep our own BX_E2E_* out of their environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BX_E2E_')));
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    execFile('bash', [path.join(ROOT, 'scripts/stack.sh'), ...args], { env }, (err, stdout, stderr) => {
      if (stderr) process.stderr.write(stderr);
      if (Date.now() - t0 > 1000) console.log(`# stack.sh ${args.join(' ')} took ${Date.now() - t0} ms`);
      if (err) reject(new Error(`stack.sh ${args.join(' ')} failed: ${err.message}`)); else resolve();
    });
  });
}

// Every FastCGI worker, and bayeux-ws when the stack runs it. Stopping is SIGKILL: nothing is
// answered or flushed on the way out (the harder case).
function allWorkers(cmd) {
  assert.ok(STACK_DIR && WORKERS > 0, 'this test needs the private stack of tests/e2e/run.sh (BX_E2E_STACK_DIR, BX_E2E_WORKERS)');
  const stop = cmd === 'worker-stop';
  const jobs = [];
  for (let i = 1; i <= WORKERS; i++) jobs.push(stack(cmd, STACK_DIR, String(i), ...(stop ? ['KILL'] : [])));
  if (process.env.BX_E2E_WS === '1') jobs.push(stack(stop ? 'ws-stop' : 'ws-start', STACK_DIR, ...(stop ? ['KILL'] : [])));
  return Promise.all(jobs);
}

// A publish as an application would do it across a restart: a transport failure (nginx 502 while
// it still rests a worker) is retried; a Bayeux error is not.
async function publishRetrying(c, ch, data) {
  for (let attempt = 1; ; attempt++) {
    try { return await publish(c, ch, data); } catch (e) {
      if (attempt >= 10 || (e.reply && e.reply.error)) throw e;
      await sleep(300);
    }
  }
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
      // Retry every 250 ms at most 1 s apart (CometD's default backoff grows by 1 s per failure, which
      // alone can outlast maxInterval on a loaded machine).
      const retry = { transport, backoffIncrement: 250, maxBackoff: 1000 };
      const sub = clients.make(retry); const pub = clients.make(retry);
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
      const down = Date.now();
      await allWorkers('worker-stop');
      await sleep(1000); // both clients see failed polls and back off
      await allWorkers('worker-start');
      const waited = await waitServing();
      const outage = Date.now() - down;
      console.log(`# outage ${outage} ms (nginx passed requests again ${waited} ms after the workers were back)`);
      assert.ok(outage < MAX_INTERVAL - 1500, `the outage (${outage} ms) must stay under maxInterval (${MAX_INTERVAL} ms) for sessions to survive: machine too slow?`);
      // Published while the subscriber is still backing off: must wait in its queue.
      for (let i = 100; i < 150; i++) await publishRetrying(pub, ch, { i });
      await inbox.waitFor(150, 40000).catch(e => {
        const got = inbox.data().map(d => d.i);
        throw new Error(`${e.message}; missing ${[...Array(150).keys()].filter(i => !got.includes(i)).join(',')}; ` +
          `subscriber status ${sub.getStatus()}, handshakes sub ${ids.sub.length} pub ${ids.pub.length}`);
      });
      await sleep(500);
      const got = inbox.data().map(d => d.i);
      const missing = [...Array(150).keys()].filter(i => !got.includes(i));
      assert.deepEqual(missing, [], 'nothing lost');
      assert.equal(got.length, 150, 'no duplicates: ' + got.length);
      assert.deepEqual(got, [...Array(150).keys()], 'in order');
      assert.equal(ids.sub.length, 1, 'the subscriber kept its session (no re-handshake)');
      assert.equal(ids.pub.length, 1, 'the publisher kept its session (no re-handshake)');
      // And the connection is live again for new traffic.
      await publishRetrying(pub, ch, { i: 150 });
      await inbox.waitFor(151, 10000);
    });
  });
}
