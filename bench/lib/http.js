// Minimal HTTP/1.1 client connection for the generator: one request at a time on one keep-alive
// socket, Content-Length or chunked bodies. Node's http module costs ~10× more CPU per request on
// these machines (measured: ~240 µs vs ~25 µs per round trip), which would make the generator the
// bottleneck. Every request has a timeout; a failure never hangs.
'use strict';
const net = require('net');

const CRLF2 = Buffer.from('\r\n\r\n');

class Conn {
  constructor(host, port) {
    this.host = host; this.port = port;
    this.sock = null; this.cur = null; this.buf = null; this.used = false;
  }

  // cb(errKind|null, status, setCookies[], bodyText). head: request line + headers without the
  // final CRLF and without Content-Length; body: a string.
  request(head, body, timeoutMs, cb) {
    if (this.cur) return cb('busy');
    const bodyBuf = Buffer.from(body, 'utf8');
    const req = Buffer.concat([Buffer.from(`${head}\r\nContent-Length: ${bodyBuf.length}\r\n\r\n`, 'latin1'), bodyBuf]);
    this.cur = { req, cb, retried: false, got: false, timeoutMs, timer: null };
    this._send();
  }

  _send() {
    const cur = this.cur;
    if (!this.sock) this._open();
    cur.reused = this.used;
    this.used = true;
    cur.timer = setTimeout(() => this._fail('timeout', true), cur.timeoutMs);
    this.sock.write(cur.req);
  }

  _open() {
    const s = net.connect(this.port, this.host);
    s.setNoDelay(true);
    this.sock = s; this.buf = null; this.used = false;
    s.on('data', (d) => { if (s === this.sock) this._data(d); });
    s.on('error', (e) => { if (s === this.sock) this._fail(e.code || 'net-error', false); });
    s.on('close', () => { if (s === this.sock) this._fail('closed', false); });
  }

  // Drop the socket; fail the current request unless it can be retried once on a fresh socket
  // (a reused keep-alive socket the server closed before reading anything).
  _fail(kind, force) {
    const cur = this.cur, s = this.sock;
    this.sock = null; this.buf = null;
    if (s) s.destroy();
    if (!cur) return;
    clearTimeout(cur.timer);
    if (!force && cur.reused && !cur.got && !cur.retried && (kind === 'closed' || kind === 'ECONNRESET' || kind === 'EPIPE')) {
      cur.retried = true;
      return this._send();
    }
    this.cur = null;
    cur.cb(kind);
  }

  _data(d) {
    const cur = this.cur;
    if (!cur) { this._fail('unsolicited-data', true); return; }
    cur.got = true;
    this.buf = this.buf ? Buffer.concat([this.buf, d]) : d;
    const b = this.buf;
    const he = b.indexOf(CRLF2);
    if (he < 0) { if (b.length > 65536) this._fail('header-too-large', true); return; }
    const lines = b.toString('latin1', 0, he).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) return this._fail('bad-status-line', true);
    let len = -1, chunked = false, close = /^HTTP\/1\.0/.test(lines[0]);
    const cookies = [];
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(':');
      if (c < 0) continue;
      const name = lines[i].slice(0, c).trim().toLowerCase(), val = lines[i].slice(c + 1).trim();
      if (name === 'content-length') len = parseInt(val, 10);
      else if (name === 'transfer-encoding') chunked = /chunked/i.test(val);
      else if (name === 'connection') close = /close/i.test(val);
      else if (name === 'set-cookie') cookies.push(val);
    }
    let body, end;
    if (chunked) {
      const parts = [];
      let p = he + 4;
      for (;;) {
        const le = b.indexOf('\r\n', p, 'latin1');
        if (le < 0) return;
        const n = parseInt(b.toString('latin1', p, le), 16);
        if (!(n >= 0)) return this._fail('bad-chunk', true);
        if (n === 0) {
          if (b.length < le + 4) return;   // no trailers expected: "0\r\n\r\n"
          end = le + 4; break;
        }
        if (b.length < le + 2 + n + 2) return;
        parts.push(b.subarray(le + 2, le + 2 + n));
        p = le + 2 + n + 2;
      }
      body = Buffer.concat(parts).toString('utf8');
    } else if (len >= 0) {
      if (b.length < he + 4 + len) return;
      end = he + 4 + len;
      body = b.toString('utf8', he + 4, end);
    } else {
      return this._fail('no-content-length', true);   // read-until-close bodies are not used by any server here
    }
    clearTimeout(cur.timer);
    this.cur = null;
    this.buf = end < b.length ? b.subarray(end) : null;
    if (close) { const s = this.sock; this.sock = null; this.buf = null; if (s) s.destroy(); }
    cur.cb(null, Number(m[1]), cookies, body);
  }

  destroy() { const s = this.sock; this.sock = null; if (s) s.destroy(); if (this.cur) { clearTimeout(this.cur.timer); this.cur = null; } }
}

module.exports = { Conn };

// A Bayeux endpoint as seen by one client: its connection(s) and its cookie jar.
// post(conn, bodyText, timeoutMs, cb(errKind|null, messages[])) on any of the client's connections.
class BayeuxPoster {
  constructor(url) {
    this.head = `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json;charset=UTF-8`;
    this.host = url.hostname; this.port = Number(url.port) || 80;
  }

  conn() { return new Conn(this.host, this.port); }

  post(c, conn, body, timeoutMs, cb) {
    const head = c.cookie ? `${this.head}\r\nCookie: ${c.cookie}` : this.head;
    conn.request(head, body, timeoutMs, (e, status, cookies, text) => {
      if (cookies && cookies.length) keepCookies(c, cookies);
      if (e) return cb(e);
      if (status !== 200) return cb('http-' + status);
      let msgs;
      try { msgs = JSON.parse(text); } catch (x) { return cb('bad-json'); }
      cb(null, Array.isArray(msgs) ? msgs : [msgs]);
    });
  }
}

// Keep the name=value of each Set-Cookie in c.cookie ("a=1; b=2"), newest value per name.
function keepCookies(c, setCookie) {
  const jar = new Map(c.cookie ? c.cookie.split('; ').map((kv) => [kv.split('=')[0], kv]) : []);
  for (const line of setCookie) {
    const kv = line.split(';')[0].trim();
    const eq = kv.indexOf('=');
    if (eq > 0) jar.set(kv.slice(0, eq), kv);
  }
  c.cookie = [...jar.values()].join('; ');
}

module.exports.BayeuxPoster = BayeuxPoster;
