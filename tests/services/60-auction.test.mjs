// The clustered auction (CometD's Oort auction demo in our shape): two worker pools behind two nginx
// ports share one Redis (run.sh starts pool B); bids placed through pool A reach watchers on pool B at
// once, a bid not above the highest is refused with the current highest, and every watcher sees the
// same order of accepted bids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, connectReply, deliveries, sleep, unique } from '../integration/lib/bayeux.mjs';

const B = { base: process.env.BX_URL_B };

async function bid(c, item, amount, bidder, id) {
  const res = await c.post([{ channel: '/service/auction/bid', clientId: c.clientId, id, data: { item, amount, bidder } }]);
  assert.equal(res.status, 200, res.text);
  const r = res.json.find((m) => m.id === id && 'data' in m);
  assert.ok(r, res.text);
  return r.data;
}

test('a bid through pool A reaches a watcher on pool B at once; low bids are refused', async () => {
  assert.ok(process.env.BX_URL_B, 'pool B is running');
  const item = unique('item');
  const watcherB = await new Client('watcherB', undefined, B).ready();
  const watcherA = await new Client('watcherA').ready();
  assert.equal((await watcherB.subscribe(`/auction/item/${item}`)).successful, true);
  assert.equal((await watcherA.subscribe('/auction/item/*')).successful, true);
  const bidderA = await new Client('bidderA').ready();
  const bidderB = await new Client('bidderB', undefined, B).ready();
  const poll = watcherB.connect(); // held on pool B
  await sleep(200);
  assert.deepEqual(await bid(bidderA, item, 100, 'alice', 'b1'), { accepted: true, amount: 100 });
  const res = await poll;
  assert.ok(res.ms < 1500, `the held connect on pool B returned after ${res.ms} ms`);
  assert.deepEqual(deliveries(res).map((m) => m.data), [{ item, amount: 100, bidder: 'alice' }]);
  // a bid through pool B that is not higher: refused, with the highest
  assert.deepEqual(await bid(bidderB, item, 100, 'bob', 'b2'), { accepted: false, amount: 100, bidder: 'alice' });
  assert.deepEqual(await bid(bidderB, item, 150, 'bob', 'b3'), { accepted: true, amount: 150 });
  // racing bids from both pools: exactly one order, seen identically by both watchers
  const amounts = [160, 170, 180, 190, 200, 210];
  const results = await Promise.all(amounts.map((a, i) => bid(i % 2 ? bidderB : bidderA, item, a, i % 2 ? 'bob' : 'alice', `r${i}`)));
  assert.ok(results.some((r) => r.accepted), JSON.stringify(results));
  await sleep(300);
  const seen = async (c) => {
    const r = await c.connect({ advice: { timeout: 0 } });
    assert.equal(connectReply(r).successful, true, r.text);
    return deliveries(r).filter((m) => m.channel === `/auction/item/${item}`).map((m) => m.data.amount);
  };
  const onB = await seen(watcherB);
  const onA = (await seen(watcherA));
  assert.deepEqual(onA.slice(-onB.length), onB, 'same order on both pools');
  assert.ok(onB.every((v, i) => i === 0 || v > onB[i - 1]), `accepted bids only rise: ${onB}`);
  assert.equal(onB.at(-1), 210, 'the highest bid wins');
  // bad bids
  for (const data of [{ item, amount: 0, bidder: 'x' }, { item, amount: 1.5, bidder: 'x' }, { item: 'a b', amount: 5, bidder: 'x' }, { item, amount: 500 }]) {
    const r = await bidderA.post([{ channel: '/service/auction/bid', clientId: bidderA.clientId, id: 'bad', data }]);
    assert.equal(r.json.find((m) => m.id === 'bad').error, '400::data_invalid', JSON.stringify(data));
  }
});
