// External services through Redis streams with the example consumer (examples/services/upper.py):
// the answer reaches only the caller; no answer within externalServiceTimeout (3000 ms in run.sh)
// → 406::timeout and the late answer is dropped (logged by the service, never delivered, not even
// to a new session); a consumer that dies after reading leaves the request for another (XAUTOCLAIM).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Client, connectReply, deliveries, replyTo, sleep } from '../integration/lib/bayeux.mjs';

const children = new Set();
after(() => { for (const c of children) c.kill('SIGKILL'); });

// Start upper.py for channel; resolves once it serves. Output collected in .out.
function service(channel, ...extra) {
  const child = spawn('/usr/bin/python3', ['examples/services/upper.py', '--redis', `127.0.0.1:${process.env.BX_REDIS_PORT}`,
    '--prefix', process.env.BX_REDIS_PREFIX, '--channel', channel, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.out = '';
  child.done = new Promise((r) => child.on('exit', (code) => { children.delete(child); r(code); }));
  return new Promise((resolve, reject) => {
    const onData = (b) => { child.out += b; if (child.out.includes('serving')) resolve(child); };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => reject(new Error(`upper.py exited: ${child.out}`)));
  });
}

async function stop(child) {
  child.kill('SIGTERM');
  await child.done;
}

// Remote-call messages with this id delivered to c within ms.
async function replies(c, id, ms) {
  const got = [];
  const end = Date.now() + ms;
  while (Date.now() < end && got.length === 0) {
    const res = await c.connect();
    assert.equal(connectReply(res).successful, true, res.text);
    got.push(...res.json.filter((m) => m.id === id && m.channel !== '/meta/connect'));
  }
  return got;
}

async function call(c, channel, data, id) {
  const res = await c.post([{ channel, data, id, clientId: c.clientId }]);
  assert.equal(res.status, 200, res.text);
  const ack = replyTo(res, id);
  assert.equal(ack.successful, true, res.text);
  return ack;
}

test('an external service answers the caller only', async () => {
  const svc = await service('/service/upper', '--consumer', 'up1');
  try {
    const a = await new Client('a').ready();
    const b = await new Client('b').ready();
    assert.equal((await b.subscribe('/service/**')).successful, true);
    await call(a, '/service/upper', { text: 'hello' }, 'u1');
    const got = await replies(a, 'u1', 5000);
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.equal(got[0].channel, '/service/upper');
    assert.equal(got[0].successful, true);
    assert.deepEqual(got[0].data, { text: 'HELLO', user: '', by: 'up1' });
    // the service's own error becomes a failed reply
    await call(a, '/service/upper', { nope: 1 }, 'u2');
    const bad = await replies(a, 'u2', 5000);
    assert.equal(bad[0]?.successful, false, JSON.stringify(bad));
    assert.equal(bad[0].error, '400::text_expected');
    const res = await b.connect({ advice: { timeout: 0 } });
    assert.deepEqual(deliveries(res), [], 'the bystander gets nothing');
  } finally {
    await stop(svc);
  }
});

test('no answer in time: 406::timeout for the caller, the late answer is dropped and logged', async () => {
  const svc = await service('/service/slow', '--consumer', 'slow1', '--delay-ms', '4500');
  try {
    const a = await new Client('a').ready();
    const t0 = Date.now();
    await call(a, '/service/slow', { text: 'x' }, 's1');
    const got = await replies(a, 's1', 8000);
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.equal(got[0].successful, false);
    assert.equal(got[0].error, '406::timeout');
    assert.ok(Date.now() - t0 >= 2900, 'not before the timeout');
    const fresh = await new Client('fresh').ready();
    const end = Date.now() + 6000;
    while (!svc.out.includes('dropped') && Date.now() < end) await sleep(100);
    assert.match(svc.out, /request \d+ answered after its deadline: dropped/);
    for (const c of [a, fresh]) {
      const res = await c.connect({ advice: { timeout: 0 } });
      assert.deepEqual(res.json.filter((m) => m.id === 's1'), [], `${c.name}: nothing after the timeout`);
    }
  } finally {
    await stop(svc);
  }
});

test('a consumer dying after reading leaves the request pending; another claims and answers it', async () => {
  const dying = await service('/service/crashy', '--consumer', 'dies', '--die-after-read');
  const a = await new Client('a').ready();
  await call(a, '/service/crashy', { text: 'again' }, 'c1');
  assert.equal(await dying.done, 3, dying.out);
  const heir = await service('/service/crashy', '--consumer', 'heir', '--claim-idle-ms', '100');
  try {
    const got = await replies(a, 'c1', 5000);
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.deepEqual(got[0].data, { text: 'AGAIN', user: '', by: 'heir' });
    const end = Date.now() + 3000;
    while (!/\(claimed\) answered: ok/.test(heir.out) && Date.now() < end) await sleep(50);
    assert.match(heir.out, /\(claimed\) answered: ok/);
  } finally {
    await stop(heir);
  }
});
