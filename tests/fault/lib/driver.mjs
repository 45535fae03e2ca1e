// Raw Bayeux long-polling clients for the fault suite (Node built-ins only): subscribers that
// negotiate the ack extension and behave like cometd.js on failures (retry with backoff, re-handshake
// on 402), and a publisher at a steady rate with sequence numbers. Everything they see is recorded so
// a test can assert "0 lost, 0 reordered, no error" per client.
import http from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let uniq = 0;
export const unique = (p = 'f') => `${p}${process.pid}x${Date.now().toString(36)}x${++uniq}`;

// post(base, body, jar, timeoutMs, agent) → {status, json, text}; rejects on a network error or
// timeout. Without an agent every request has its own TCP connection (aborting one disturbs no other).
export function post(base, body, jar, timeoutMs, agent = false) {
  const url = new URL('/cometd/', base);
  const data = Buffer.from(JSON.stringify(body));
  const headers = { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': data.length };
  if (jar && jar.size) headers.Cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        for (const line of res.headers['set-cookie'] || []) {
          const [pair] = line.split(';');
          const i = pair.indexOf('=');
          if (jar && i > 0) jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
        }
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

// A session: handshake (ext.ack), first connect, meta calls. Records every failure in this.events.
export class Session {
  constructor(base, name, { timeout = 2000, ack = true } = {}) {
    this.base = base; this.name = name; this.timeout = timeout; this.ack = ack;
    this.jar = new Map(); this.n = 0; this.clientId = null; this.batch = undefined;
    this.events = []; // {t, kind: 'error'|'retry'|'handshake', what}
    this.handshakes = 0;
  }
  id() { return String(++this.n); }
  note(kind, what) { this.events.push({ t: Date.now(), kind, what: `${this.name}: ${what}` }); }
  errors() { return this.events.filter((e) => e.kind !== 'retry'); }
  send(msgs, timeoutMs = this.timeout + 8000) { return post(this.base, msgs, this.jar, timeoutMs); }

  // Handshake + first connect, retried (with a note each time) until it works or `ms` passes.
  async open(ms = 20000) {
    const end = Date.now() + ms;
    for (;;) {
      try {
        const hs = { channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id: this.id() };
        if (this.ack) hs.ext = { ack: true };
        const res = await this.send([hs]);
        const r = Array.isArray(res.json) && res.json[0];
        if (res.status !== 200 || !r || !r.successful) throw new Error(`handshake HTTP ${res.status} ${res.text.slice(0, 200)}`);
        if (this.ack && r.ext?.ack !== true) throw new Error(`handshake did not negotiate ack: ${res.text}`);
        this.clientId = r.clientId; this.batch = undefined; this.handshakes++;
        const c = await this.send([this.connectMessage({ advice: { timeout: 0 } })]);
        const cr = this.connectReply(c);
        if (!cr || !cr.successful) throw new Error(`first connect HTTP ${c.status} ${c.text.slice(0, 200)}`);
        return this;
      } catch (e) {
        this.note('error', e.message);
        if (Date.now() > end) throw new Error(`${this.name}: no session within ${ms} ms: ${e.message}`);
        await sleep(200);
      }
    }
  }

  connectMessage(extra = {}) {
    const m = { channel: '/meta/connect', clientId: this.clientId, connectionType: 'long-polling', id: this.id(), ...extra };
    if (this.ack) m.ext = { ack: this.batch ?? 0 };
    return m;
  }
  connectReply(res) {
    if (res.status !== 200 || !Array.isArray(res.json)) return null;
    const r = res.json.find((m) => m.channel === '/meta/connect');
    if (r && this.ack && r.successful && typeof r.ext?.ack === 'number') this.batch = r.ext.ack;
    return r || null;
  }
  // A meta or publish message; resolves with its reply, or null after a failure (noted).
  async call(msg) {
    msg = { clientId: this.clientId, id: this.id(), ...msg };
    let res;
    try { res = await this.send([msg]); } catch (e) { this.note('error', `${msg.channel}: ${e.message}`); return null; }
    const r = res.status === 200 && Array.isArray(res.json) && res.json.find((m) => m.id === msg.id && 'successful' in m);
    if (!r) { this.note('error', `${msg.channel}: HTTP ${res.status} ${res.text.slice(0, 200)}`); return null; }
    return r;
  }
  async disconnect() {
    try { await this.send([{ channel: '/meta/disconnect', clientId: this.clientId, id: this.id() }], 5000); } catch { /* best effort */ }
  }
}

// A subscriber that long-polls until stop(), recording every delivery's data.seq for its channel.
export class Subscriber extends Session {
  constructor(base, name, channel, opts) {
    super(base, name, opts);
    this.channel = channel; this.seqs = []; this.stopped = false; this.fatal = null;
    // cometd.js backs off 1 s more after each failed connect (backoffIncrement), up to 60 s
    this.cometdBackoff = Boolean(opts?.cometdBackoff); this.failures = 0;
  }
  async subscribe() {
    for (let i = 0; i < 50; i++) {
      const r = await this.call({ channel: '/meta/subscribe', subscription: this.channel });
      if (r?.successful) return;
      if (r) this.note('error', `subscribe: ${JSON.stringify(r)}`);
      await sleep(200);
    }
    throw new Error(`${this.name}: subscribe failed 50 times`);
  }
  async start() {
    await this.open();
    await this.subscribe();
    this.done = this.loop();
    return this;
  }
  async loop() {
    let backoff = 0;
    while (!this.stopped) {
      let res;
      try {
        res = await this.send([this.connectMessage()]);
      } catch (e) {
        if (this.stopped) break;
        this.note('error', `connect: ${e.message}`);
        backoff = Math.min(backoff + 100, 1000); await sleep(backoff); continue;
      }
      const r = this.connectReply(res);
      if (!r) {
        if (this.stopped) break;
        this.note('error', `connect: HTTP ${res.status} ${res.text.slice(0, 200)}`);
        backoff = Math.min(backoff + 100, 1000); await sleep(backoff); continue;
      }
      backoff = 0;
      if (r.successful) {
        this.failures = 0;
        for (const m of res.json) if (m.channel === this.channel && m.data) this.seqs.push(m.data.seq);
        if (r.advice?.reconnect === 'none') { if (!this.stopped) this.fatal = `reconnect none: ${res.text}`; break; }
        if (r.advice?.interval > 0) await sleep(r.advice.interval);
        continue;
      }
      const how = r.advice?.reconnect;
      if (how === 'retry') {
        this.note('retry', `connect: ${r.error || ''} retry`);
        this.failures++;
        await sleep((r.advice.interval || 0) + (this.cometdBackoff ? Math.min(60000, 1000 * this.failures) : 0));
        continue;
      }
      if (how === 'handshake') {
        // The session is gone: whatever was queued for it is lost. cometd.js re-handshakes and the
        // application resubscribes; the test decides whether that was allowed.
        this.note('handshake', `connect: ${r.error} → re-handshake`);
        await this.open(); await this.subscribe(); continue;
      }
      this.fatal = `connect failed without retry advice: ${res.text}`; break;
    }
  }
  async stop() {
    this.stopped = true;
    await this.disconnect();
    await this.done;
  }
}

// Publishes {seq} to channel every `period` ms; a failed publish is sent again with the same seq
// (then a subscriber may see that seq twice, and only that seq). acked = seqs the server accepted.
export class Publisher extends Session {
  constructor(base, name, channel, period, opts) {
    super(base, name, { ack: false, ...opts });
    this.channel = channel; this.period = period; this.seq = 0; this.acked = []; this.ackedAt = new Map(); this.retried = new Set();
    this.stopped = false;
  }
  async start() { await this.open(); this.done = this.loop(); return this; }
  async loop() {
    let next = Date.now();
    while (!this.stopped) {
      const seq = ++this.seq;
      for (let attempt = 0; ; attempt++) {
        if (attempt > 0) this.retried.add(seq);
        const r = await this.call({ channel: this.channel, data: { seq, t: Date.now() } });
        if (r?.successful) { this.acked.push(seq); this.ackedAt.set(seq, Date.now()); break; }
        if (r?.error === '402::session_unknown') { this.note('handshake', 'publish: 402 → re-handshake'); await this.open(); continue; }
        if (r) this.note(r.advice?.reconnect === 'retry' ? 'retry' : 'error', `publish ${seq}: ${JSON.stringify(r)}`);
        await sleep(100);
      }
      next += this.period;
      await sleep(Math.max(0, next - Date.now()));
    }
  }
  async stop() { this.stopped = true; await this.done; await this.disconnect(); }
}

// What a subscriber got against what was published: lost (accepted, never delivered), reordered (a
// new seq after a higher one), dup (delivered twice though the publisher sent it once).
export function verdict(sub, pub) {
  const seen = new Set(); let max = 0; const reordered = []; const dup = [];
  for (const s of sub.seqs) {
    if (seen.has(s)) { if (!pub.retried.has(s)) dup.push(s); continue; }
    seen.add(s);
    if (s < max) reordered.push(s);
    max = Math.max(max, s);
  }
  const lost = pub.acked.filter((s) => !seen.has(s));
  return { lost, reordered, dup, got: seen.size };
}

// Waits until every subscriber has every accepted seq (or ms passed).
export async function drained(subs, pub, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (subs.every((s) => verdict(s, pub).lost.length === 0)) return true;
    await sleep(100);
  }
  return false;
}
