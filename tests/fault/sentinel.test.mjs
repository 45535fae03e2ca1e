// Redis Sentinel (run by tests/fault/run.sh after the main suite): a primary, a replica and one
// sentinel on free ports, workers configured with redisSentinels only. The primary is SIGKILLed
// under load; the sentinel promotes the replica and the workers must follow it on their own.
// Replication is asynchronous: publishes the primary accepted in its last moments may not have
// reached the replica. The bound tested: nothing accepted more than 1 s before the kill is lost,
// every session survives, everything accepted after the failover arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { sleep, verdict } from './lib/driver.mjs';
import { scenario, summary } from './lib/scenario.mjs';

const run = promisify(execFile);
const { BX_URL, BX_SENTINEL_PORT, BX_REPLICA_PORT, BX_PRIMARY_PID, BX_CTL } = process.env;
const sentinel = async (...a) => (await run('redis-cli', ['-p', BX_SENTINEL_PORT, ...a])).stdout.trim().split('\n');
const ctl = async (...a) => (await run(BX_CTL, ['--sentinels', `127.0.0.1:${BX_SENTINEL_PORT}`, '--master-name', 'fault',
  '--prefix', 'fault:', '--json', ...a])).stdout;

test('primary SIGKILLed under load: the sentinel promotes the replica, workers and bayeuxctl follow', { timeout: 120000 }, async () => {
  assert.ok(JSON.parse(await ctl('stats')), 'bayeuxctl through the sentinel before the failover');
  let tKill, tPromoted;
  const { inv } = await scenario(async (g) => {
    tKill = Date.now();
    process.kill(Number(readFileSync(BX_PRIMARY_PID, 'utf8')), 'SIGKILL');
    const end = Date.now() + 30000;
    while ((await sentinel('SENTINEL', 'get-master-addr-by-name', 'fault'))[1] !== BX_REPLICA_PORT) {
      assert.ok(Date.now() < end, 'the sentinel did not promote the replica within 30 s');
      await sleep(100);
    }
    tPromoted = Date.now();
    // Publishing goes on; the workers must find the new primary and accept publishes again.
    const n = g.pub.acked.length;
    while (g.pub.acked.length < n + 20) {
      assert.ok(Date.now() < end + 15000, `workers did not follow: ${g.pub.acked.length - n} publishes accepted since the promotion`);
      await sleep(100);
    }
  }, { url: BX_URL, bystanders: 0, period: 25, after: 1000 });
  const tFollowed = inv.pub.ackedAt.get(inv.pub.acked.find((s) => inv.pub.ackedAt.get(s) > tPromoted));
  console.log(`promoted ${tPromoted - tKill} ms after the kill, first publish accepted again ${tFollowed - tPromoted} ms later; ${summary(inv)}`);
  for (const s of inv.subs) {
    const v = verdict(s, inv.pub);
    assert.equal(s.fatal, null, `${s.name}: ${s.fatal}`);
    const late = v.lost.filter((q) => inv.pub.ackedAt.get(q) < tKill - 1000 || inv.pub.ackedAt.get(q) > tKill);
    assert.deepEqual(late, [], `${s.name} lost messages accepted outside the last second before the kill`);
    assert.deepEqual(v.reordered, [], `${s.name} out of order`);
    assert.deepEqual(s.events.filter((e) => e.kind === 'handshake').map((e) => e.what), [], `${s.name} lost its session`);
    if (v.lost.length) console.log(`${s.name}: ${v.lost.length} publishes accepted by the old primary in its last second did not replicate`);
  }
  const stats = JSON.parse(await ctl('stats'));
  assert.ok(stats, 'bayeuxctl through the sentinel after the failover');
});

// The other way a master changes: it stays up and is demoted (SENTINEL FAILOVER, a maintenance
// switch-over). The workers' connections to it survive the switch unless Sentinel kills them, so
// they must notice (READONLY replies, or the sentinel's CLIENT KILL) and move.
test('switch-over (SENTINEL FAILOVER) while the old primary stays up: workers follow, nothing is lost', { timeout: 120000 }, async () => {
  const { stack } = await import('../integration/lib/stack.mjs');
  // The killed primary comes back; the sentinel turns it into a replica of the new one.
  await stack('redis-start', process.env.BX_STACK_DIR);
  const oldPort = process.env.BX_PRIMARY_PORT;
  // What the sentinel would do some seconds later: make it a replica of the current master now.
  await run('redis-cli', ['-p', oldPort, 'REPLICAOF', '127.0.0.1', BX_REPLICA_PORT]);
  const end = Date.now() + 30000;
  // A Redis in the middle of a sync or a switch-over may close our connection (sentinel kills
  // clients): that reading counts as "not yet", the deadlines below still bound the wait.
  const replInfo = (port) => run('redis-cli', ['-p', port, 'INFO', 'replication']).then((r) => r.stdout, () => '');
  for (;;) {
    const info = await replInfo(oldPort);
    if (/role:slave/.test(info) && /master_link_status:up/.test(info) && /master_sync_in_progress:0/.test(info)) break;
    assert.ok(Date.now() < end, `the old primary did not become an in-sync replica: ${info}`);
    await sleep(200);
  }
  let tSwitch, tDemoted;
  const role = async (port) => /role:(\w+)/.exec(await replInfo(port))?.[1];
  const newReplica = (await sentinel('SENTINEL', 'get-master-addr-by-name', 'fault'))[1];
  const { inv } = await scenario(async (g) => {
    tSwitch = Date.now();
    await sentinel('SENTINEL', 'FAILOVER', 'fault');
    while ((await sentinel('SENTINEL', 'get-master-addr-by-name', 'fault'))[1] !== oldPort) {
      assert.ok(Date.now() < end + 30000, 'the switch-over did not happen within 30 s');
      await sleep(50);
    }
    // Until the sentinel reconfigures the demoted master it still accepts writes: wait for that too,
    // then the workers must be on the new master.
    while ((await role(newReplica)) !== 'slave') {
      assert.ok(Date.now() < end + 45000, 'the sentinel did not demote the old master');
      await sleep(50);
    }
    tDemoted = Date.now();
    const n = g.pub.acked.length;
    while (g.pub.acked.length < n + 20) {
      assert.ok(Date.now() < end + 60000, 'workers did not follow the switch-over');
      await sleep(100);
    }
  }, { url: BX_URL, bystanders: 0, period: 25, after: 1000 });
  const window = inv.pub.acked.filter((q) => inv.pub.ackedAt.get(q) >= tSwitch && inv.pub.ackedAt.get(q) <= tDemoted);
  console.log(`switch-over: old master demoted ${tDemoted - tSwitch} ms after SENTINEL FAILOVER ` +
    `(${window.length} publishes accepted in between); ${summary(inv)}`);
  for (const s of inv.subs) {
    const v = verdict(s, inv.pub);
    assert.equal(s.fatal, null, `${s.name}: ${s.fatal}`);
    // Only what the old master accepted between the switch and its demotion may be lost.
    const late = v.lost.filter((q) => !window.includes(q));
    assert.deepEqual(late, [], `${s.name} lost publishes accepted outside the switch-over window`);
    assert.deepEqual(v.reordered, [], `${s.name} out of order`);
    assert.deepEqual(s.events.filter((e) => e.kind === 'handshake').map((e) => e.what), [], `${s.name} lost its session`);
    if (v.lost.length) console.log(`${s.name}: lost ${v.lost.length} publishes of the switch-over window`);
  }
});
