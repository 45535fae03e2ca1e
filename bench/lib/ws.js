// Bayeux over WebSocket for the generator: one socket per client, Node's built-in WebSocket
// (Node 20: run with --experimental-websocket). Replies are matched to requests by message id;
// everything else that arrives (pushed deliveries) goes to onPush. A reply is a message with
// `successful` (meta replies, publish acks); a delivery has `data` and no `successful` (it may
// carry its publisher's id, which can equal one of ours).
'use strict';

class WsClient {
  constructor(url, onPush) {
    const u = new URL(url);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = u.toString();
    this.onPush = onPush;
    this.ws = null; this.waiting = []; this.pending = new Map();
  }

  // Send a batch; cb(errKind|null, replies[]) once every message of it is answered, or on timeout /
  // socket failure.
  post(body, timeoutMs, cb) {
    const st = { left: body.length, replies: [], done: false, timer: null };
    const finish = (e) => {
      if (st.done) return;
      st.done = true; clearTimeout(st.timer);
      for (const m of body) this.pending.delete(m.id);
      cb(e, st.replies);
    };
    st.timer = setTimeout(() => finish('timeout'), timeoutMs);
    for (const m of body) this.pending.set(m.id, { reply: (r) => { st.replies.push(r); if (--st.left === 0) finish(null); }, fail: finish });
    const send = (e) => {
      if (e) return finish(e);
      try { this.ws.send(JSON.stringify(body)); } catch (x) { finish('ws-send'); }
    };
    if (this.ws && this.ws.readyState === 1) return send(null);
    this.waiting.push(send);
    if (!this.ws) this._open();
  }

  _open() {
    if (typeof WebSocket !== 'function') { this._failAll('no-websocket-client (node --experimental-websocket)'); return; }
    let ws;
    try { ws = new WebSocket(this.url); } catch (e) { this._failAll('ws-url'); return; }
    this.ws = ws;
    ws.onopen = () => { const w = this.waiting; this.waiting = []; for (const f of w) f(null); };
    ws.onmessage = (ev) => {
      let msgs;
      try { msgs = JSON.parse(typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data).toString('utf8')); } catch (e) { return; }
      if (!Array.isArray(msgs)) msgs = [msgs];
      const pushed = [];
      for (const m of msgs) {
        const p = m && m.successful !== undefined && this.pending.get(m.id);
        if (p) p.reply(m); else pushed.push(m);
      }
      if (pushed.length) this.onPush(pushed);
    };
    ws.onerror = () => { if (ws === this.ws) this._failAll('ws-error'); };
    ws.onclose = () => { if (ws === this.ws) this._failAll('ws-closed'); };
  }

  _failAll(kind) {
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onclose = ws.onerror = ws.onmessage = null; try { ws.close(); } catch (e) { /* already closed */ } }
    const w = this.waiting; this.waiting = [];
    for (const f of w) f(kind);
    for (const p of [...this.pending.values()]) p.fail(kind);
  }

  get busy() { return this.pending.size > 0; }
  destroy() { this._failAll('closed'); }
}

module.exports = { WsClient };
