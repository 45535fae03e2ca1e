// The official client with every transport registered (as a browser page has them): it negotiates
// websocket when the server offers it first, and uses long-polling when bayeux-ws is down.
// Needs the private stack of tests/e2e/run.sh with bayeux-ws (BX_E2E_WS=1, BX_E2E_STACK_DIR).
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CometD } from 'cometd';
import { SERVER_URL, handshake, subscribe, publish, disconnect, newClient, Inbox, uniq } from './lib/bayeux.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STACK_DIR = process.env.BX_E2E_STACK_DIR;

function stack(cmd) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BX_E2E_')));
  execFileSync('bash', [path.join(ROOT, 'scripts/stack.sh'), cmd, STACK_DIR], { env, stdio: ['ignore', 'inherit', 'inherit'] });
}

// A client as a page makes it: default transports (websocket, long-polling, callback-polling).
function pageClient(list) {
  const c = new CometD(`ws-e2e-${list.length}`);
  c.configure({ url: SERVER_URL, logLevel: process.env.BX_E2E_LOG || 'warn' });
  list.push(c);
  return c;
}

async function roundTrip(c) {
  const ch = `/e2e/${uniq()}/ws`;
  const inbox = new Inbox(ch);
  await subscribe(c, ch, inbox.fn);
  await publish(c, ch, { hello: c.getTransport().type });
  await inbox.waitFor(1, 5000);
  assert.deepEqual(inbox.data(), [{ hello: c.getTransport().type }]);
}

describe('transport negotiation with bayeux-ws', () => {
  const clients = [];
  afterEach(async () => {
    await Promise.allSettled(clients.map((c) => disconnect(c).catch(() => {})));
    clients.length = 0;
  });

  test('the official client negotiates websocket when the server lists it first', async () => {
    assert.equal(process.env.BX_E2E_WS, '1', 'run through tests/e2e/run.sh, which starts bayeux-ws');
    const c = pageClient(clients);
    const hs = await handshake(c);
    assert.equal(hs.supportedConnectionTypes[0], 'websocket');
    assert.equal(c.getTransport().type, 'websocket');
    await roundTrip(c);
  });

  // bayeux-ws pushes messages outside /meta/connect, except for ack sessions (delivered on connects,
  // as CometD's metaConnectDeliveryOnly): both must reach the official client once each, in order.
  for (const ack of [false, true]) {
    test(`messages published while the connect is held arrive once, in order (ack ${ack})`, async () => {
      const ch = `/e2e/${uniq()}/push`;
      const c = newClient({ transport: 'websocket', ack });
      const pub = newClient({ transport: 'websocket' });
      clients.push(c, pub);
      await handshake(c);
      await handshake(pub);
      const inbox = new Inbox(ch);
      await subscribe(c, ch, inbox.fn);
      await new Promise((r) => setTimeout(r, 300)); // its /meta/connect is held now
      for (let i = 0; i < 20; i++) await publish(pub, ch, { i });
      await inbox.waitFor(20, 5000);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(inbox.data().map((d) => d.i), [...Array(20).keys()]);
    });
  }

  test('with bayeux-ws stopped it falls back to long-polling and works', { timeout: 60000 }, async () => {
    assert.ok(STACK_DIR, 'needs the private stack of tests/e2e/run.sh');
    stack('ws-stop');
    try {
      const c = pageClient(clients);
      await handshake(c);
      assert.equal(c.getTransport().type, 'long-polling');
      await roundTrip(c);
    } finally {
      stack('ws-start');
    }
    const again = pageClient(clients); // and back to websocket for the next page
    await handshake(again);
    assert.equal(again.getTransport().type, 'websocket');
  });
});
