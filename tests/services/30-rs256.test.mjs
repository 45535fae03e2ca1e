// Security policy with RS256 (run.sh restarts the workers with jwtAlgorithm=RS256 and the public key):
// an RS256 token is accepted; an HS256 token signed with the public key as secret (algorithm
// confusion) or with the old HS256 secret is denied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, handshakeMessage } from '../integration/lib/bayeux.mjs';
import { inAMinute, jwt, rsaPrivate, rsaPublic } from './lib.mjs';

async function handshakeWith(token) {
  const c = new Client('rs');
  const res = await c.post([handshakeMessage(c.nextId(), { ext: { token } })], { suffix: 'handshake' });
  assert.equal(res.status, 200, res.text);
  return res.json[0];
}

test('RS256: the right key pair passes, algorithm confusion and the HS256 secret do not', async () => {
  const ok = await handshakeWith(jwt({ sub: 'rsa-user', exp: inAMinute() }, { alg: 'RS256', key: rsaPrivate() }));
  assert.equal(ok.successful, true, JSON.stringify(ok));
  for (const [what, token] of Object.entries({
    confusion: jwt({ sub: 'root', exp: inAMinute() }, { alg: 'HS256', key: rsaPublic() }),
    'old secret': jwt({ sub: 'root', exp: inAMinute() }),
    'tampered': (() => { const t = jwt({ sub: 'x', exp: inAMinute() }, { alg: 'RS256', key: rsaPrivate() }); return t.slice(0, -3) + (t.endsWith('AAA') ? 'BBB' : 'AAA'); })(),
  })) {
    const r = await handshakeWith(token);
    assert.equal(r.successful, false, `${what}: ${JSON.stringify(r)}`);
    assert.equal(r.error, '403::handshake_denied', what);
    assert.equal(r.advice?.reconnect, 'none', what);
  }
});
