// Hostile input (bayeux-notes.md §7 #25 and issue 5 "Bad input"): each is answered as CometD does and
// nothing else is disturbed; after each, brand-new clients still complete a full round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { BASE, CFG, Client, request, sleep, assertHealthy, connectReply } from './lib/bayeux.mjs';
import { workerLogLines } from './lib/stack.mjs';

const post = (body, headers = {}) => request('POST', '/cometd/connect', { body, headers });

test('#25 malformed JSON → 400, empty body → 400, [] → 500', async () => {
  assert.equal((await post('[{"channel":"/meta/connect",')).status, 400);
  assert.equal((await post('')).status, 400);
  assert.equal((await post('[]')).status, 500);
  await assertHealthy('#25');
});

test('#25 a body over maxMessageSize → 500 from the worker; far over it → 413 from the web server', async () => {
  const c = await new Client('big').ready();
  const over = JSON.stringify([{ channel: '/chat/big', clientId: c.clientId, data: 'x'.repeat(CFG.maxMessageSize + 100) }]);
  assert.ok(over.length < CFG.frontMaxBody, 'reaches the worker');
  const logged = workerLogLines(/maxMessageSize/).length;
  const r1 = await c.post(over);
  assert.equal(r1.status, 500, `${over.length} bytes: HTTP ${r1.status} ${r1.text.slice(0, 200)}`);
  await sleep(100);
  // Logged once (warn, or debug while refusals are rate-limited; the suite runs at debug).
  assert.equal(workerLogLines(/maxMessageSize/).length - logged, 1, 'one log line for the oversized body');
  const under = JSON.stringify([{ channel: '/chat/big', clientId: c.clientId, data: 'x'.repeat(CFG.maxMessageSize - 1000), id: '1' }]);
  const r0 = await c.post(under);
  assert.equal(r0.status, 200, `control under the limit (${under.length} bytes): HTTP ${r0.status}`);
  const r2 = await c.post('x'.repeat(CFG.frontMaxBody + 1024));
  assert.equal(r2.status, 413, `${CFG.frontMaxBody + 1024} bytes: HTTP ${r2.status}`);
  await assertHealthy('big bodies');
});

test('a huge Content-Length is refused before the body is sent', async () => {
  const url = new URL(BASE);
  const answer = await new Promise((resolve, reject) => {
    const s = net.connect(Number(url.port), url.hostname, () => {
      s.write(`POST /cometd/connect HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: 1000000000\r\nConnection: close\r\n\r\n[{"channel":`);
    });
    let buf = '';
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no answer within 5 s; got ${JSON.stringify(buf)}`)); });
    s.on('data', (d) => { buf += d; if (buf.includes('\r\n\r\n')) { s.destroy(); resolve(buf); } });
    s.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.[01] (413|500) /, answer.slice(0, 100));
  await assertHealthy('huge content-length');
});

test('structurally wrong JSON, deep nesting, bad UTF-8, too many messages: the status the parser gives, no crash', async () => {
  // Statuses as tests/corpus/EXPECTED fixes them for the parser, checked end to end here.
  for (const body of ['5', '"x"', 'null', '[1,2]', '[[]]', '{"channel":"/meta/handshake"', 'hello', '\ufeff[]']) {
    const r = await post(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: HTTP ${r.status} ${r.text}`);
  }
  const wrongType = await post('[{"channel":5,"id":"1"}]');
  assert.equal(wrongType.status, 200, wrongType.text);
  assert.equal(wrongType.json[0].error, '400::channel_missing', wrongType.text);
  // Under the size limit, far over maxNestingDepth (64).
  const deep = await post('['.repeat(CFG.maxMessageSize - 1000));
  assert.equal(deep.status, 400, `deep nesting: HTTP ${deep.status}`);
  const deepData = await post(`[{"channel":"/x","data":${'['.repeat(100)}${']'.repeat(100)}}]`);
  assert.equal(deepData.status, 400, `100-deep data: HTTP ${deepData.status}`);
  const badUtf8 = await request('POST', '/cometd/handshake', {
    body: Buffer.concat([Buffer.from('[{"channel":"/meta/handshake","version":"1.0","ext":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]')]),
  });
  assert.equal(badUtf8.status, 400, `bad UTF-8: HTTP ${badUtf8.status} ${badUtf8.text}`);
  const many = (n) => `[${Array.from({ length: n }, () => '{"channel":"/a"}').join(',')}]`;
  const r1001 = await post(many(1001));
  assert.equal(r1001.status, 500, `1001 messages (maxBatchMessages 1000): HTTP ${r1001.status}`);
  const r1000 = await post(many(1000));
  assert.equal(r1000.status, 200, `1000 messages: HTTP ${r1000.status}`);
  await assertHealthy('structural');
});

test('methods other than GET/POST/OPTIONS: 400 Unknown Bayeux Transport', async () => {
  for (const m of ['PUT', 'DELETE', 'PATCH']) {
    const r = await request(m, '/cometd/handshake', { body: '[]' });
    assert.equal(r.status, 400, `${m}: HTTP ${r.status} ${r.text}`);
  }
  await assertHealthy('methods');
});

test('a client that sends half a body and stalls disturbs nobody', async () => {
  const url = new URL(BASE);
  const s = net.connect(Number(url.port), url.hostname);
  await new Promise((r) => s.on('connect', r));
  s.write(`POST /cometd/handshake HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n[{"channel":"/meta/hand`);
  s.on('error', () => {});
  const stalled = Array.from({ length: 20 }, () => {
    const x = net.connect(Number(url.port), url.hostname);
    x.on('error', () => {});
    x.on('connect', () => x.write(`POST /cometd/connect HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: 100\r\n\r\n[`));
    return x;
  });
  await sleep(300);
  await assertHealthy('stalled bodies');
  s.destroy(); stalled.forEach((x) => x.destroy());
});

test('unknown clientId and another browser’s cookie on publish and subscribe: 402, nothing delivered', async () => {
  const victim = await new Client('victim').ready();
  const thief = await new Client('thief').ready();
  const ch = '/chat/victim';
  assert.equal((await victim.subscribe(ch)).successful, true);
  // The thief knows the victim's clientId but has its own cookie.
  const res = await thief.post([
    { channel: '/meta/subscribe', clientId: victim.clientId, subscription: '/chat/stolen', id: '1' },
    { channel: ch, clientId: victim.clientId, data: 'forged', id: '2' },
    { channel: '/meta/disconnect', clientId: victim.clientId, id: '3' },
  ]);
  assert.equal(res.status, 200, res.text);
  for (const r of res.json) assert.equal(r.error, '402::session_unknown', res.text);
  const still = await victim.connect({ advice: { timeout: 0 } });
  assert.equal(connectReply(still).successful, true, `the victim's session survived: ${still.text}`);
  assert.deepEqual(still.json.filter((m) => m.data === 'forged'), [], still.text);
  await assertHealthy('hijack attempts');
});

