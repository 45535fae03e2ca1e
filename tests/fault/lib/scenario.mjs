// The shape every fault test shares: subscribers and a steady publisher on a fresh channel, the fault
// while messages flow, then a drain and the checks (0 lost, 0 reordered, 0 duplicated, no re-handshake).
import assert from 'node:assert/strict';
import { Subscriber, Publisher, verdict, drained, sleep, unique } from './driver.mjs';

const TIMEOUT = Number(process.env.BX_FAULT_TIMEOUT || 2000);
const opts = { timeout: TIMEOUT };
const range = (n) => Array.from({ length: n }, (_, i) => i);

// Subscribers + publisher on channel ch through base; the fault runs while messages flow.
export async function group(base, label, nsubs, period, subOpts = {}) {
  const ch = `/fault/${unique(label)}`;
  const subs = await Promise.all(range(nsubs).map((i) => new Subscriber(base, `${label}${i}`, ch, { ...opts, ...subOpts }).start()));
  const pub = await new Publisher(base, `${label}-pub`, ch, period, opts).start();
  return { label, subs, pub };
}
export async function finish(g) {
  await g.pub.stop();
  await drained(g.subs, g.pub, TIMEOUT * 3 + 5000);
  await Promise.all(g.subs.map((s) => s.stop()));
}

// Runs fault() while `involved` (behind nginx 1) and `bystanders` (behind nginx 2 → worker 2) exchange
// messages; returns both groups once every subscriber drained.
export async function scenario(fault, { url, url2, subs = 8, bystanders = 4, period = 25, before = 1000, after = 1500, subOpts } = {}) {
  const inv = await group(url, 'inv', subs, period, subOpts);
  const bys = bystanders ? await group(url2, 'bys', bystanders, period) : null;
  try {
    await sleep(before);
    await fault(inv);
    await sleep(after);
  } finally {
    await finish(inv);
    if (bys) await finish(bys);
  }
  return { inv, bys };
}

export const summary = (g) => {
  const ev = [g.pub, ...g.subs].flatMap((s) => s.events);
  const count = (k) => ev.filter((e) => e.kind === k).length;
  return `${g.label}: ${g.pub.acked.length} published, errors ${count('error')}, retry advice ${count('retry')}, ` +
    `re-handshakes ${count('handshake')}`;
};

// 0 lost, 0 reordered, 0 duplicated for every subscriber; no re-handshake (sessions survived) unless
// allowed; with strict, no event at all (no error, no retry advice).
export function assertClean(g, { strict = false } = {}) {
  assert.ok(g.pub.acked.length > 20, `${g.label}: only ${g.pub.acked.length} publishes were accepted`);
  for (const s of g.subs) {
    const v = verdict(s, g.pub);
    assert.equal(s.fatal, null, `${s.name}: ${s.fatal}`);
    assert.deepEqual(v.lost, [], `${s.name} lost ${v.lost.length} of ${g.pub.acked.length}: ${JSON.stringify(v.lost.slice(0, 30))}`);
    assert.deepEqual(v.reordered, [], `${s.name} got these out of order: ${JSON.stringify(v.reordered.slice(0, 30))}`);
    assert.deepEqual(v.dup, [], `${s.name} got these twice: ${JSON.stringify(v.dup.slice(0, 30))}`);
  }
  for (const c of [g.pub, ...g.subs]) {
    const hs = c.events.filter((e) => e.kind === 'handshake');
    assert.deepEqual(hs.map((e) => e.what), [], `${c.name} lost its session`);
    if (strict) assert.deepEqual(c.events.map((e) => e.what), [], `${c.name} saw these though the fault does not concern it`);
  }
}

