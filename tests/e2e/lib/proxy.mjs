// A tiny HTTP proxy in front of the Bayeux endpoint that can see, hold and drop traffic.
// Used to lose a /meta/connect reply (ack extension), to inspect raw replies (timesync,
// timestamp) and to starve a session until it expires (re-handshake test).
// Requests are forwarded one to one; both long-polling (POST) and callback-polling (GET ?jsonp=)
// bodies are decoded for the hooks.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const JSONP_RE = /^\s*(?:\/\*\*\/\s*)?([A-Za-z0-9._-]+)\(([\s\S]*)\)\s*;?\s*$/;

function decodeRequest(req, body) {
  try {
    if (req.method === 'GET') {
      const u = new URL(req.url, 'http://x');
      const parts = u.searchParams.getAll('message');
      return parts.length ? [].concat(JSON.parse(parts.join(''))) : [];
    }
    return body.length ? [].concat(JSON.parse(body.toString('utf8'))) : [];
  } catch { return null; }
}

function decodeResponse(req, body) {
  try {
    const text = body.toString('utf8');
    if (req.method === 'GET') {
      const m = JSONP_RE.exec(text);
      return m ? [].concat(JSON.parse(m[2])) : null;
    }
    return [].concat(JSON.parse(text));
  } catch { return null; }
}

export class BayeuxProxy {
  // target: "http://host:port/..." (only host and port are used; paths pass through).
  // staticRoot: also serve files from this folder for paths outside the Bayeux path
  // (the www/ demos in front of a server that does not serve them, e.g. a peer).
  constructor(target, staticRoot = null) {
    this.target = new URL(target);
    this.staticRoot = staticRoot && path.resolve(staticRoot);
    this.log = [];            // {req: [...msgs], res: [...msgs] | null, status, dropped}
    this.dropResponse = null; // (reqMsgs, resMsgs) => true to lose this reply
    this.holdRequest = null;  // (reqMsgs) => ms to wait before forwarding (0/undefined: none)
    this.sockets = new Set();
  }

  start() {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', s => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    return new Promise(resolve => this.server.listen(0, '127.0.0.1', () => {
      this.port = this.server.address().port;
      resolve(this);
    }));
  }

  // The URL a client should use: same path as the target, through the proxy.
  url() { return `http://127.0.0.1:${this.port}${this.target.pathname}`; }
  origin() { return `http://127.0.0.1:${this.port}`; }

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise(r => this.server.close(() => r()));
  }

  serveStatic(req, res) {
    const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png' };
    let p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (p.endsWith('/')) p += 'index.html';
    const file = path.resolve(this.staticRoot, '.' + p);
    if (!file.startsWith(this.staticRoot + path.sep)) { res.writeHead(403); return res.end(); }
    fs.readFile(file, (err, buf) => {
      if (err) { res.writeHead(404, { 'Content-Type': 'text/plain' }); return res.end('not found'); }
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
      res.end(buf);
    });
  }

  handle(req, res) {
    if (this.staticRoot && !req.url.startsWith(this.target.pathname)) return this.serveStatic(req, res);
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const reqMsgs = decodeRequest(req, body);
      const entry = { method: req.method, req: reqMsgs, res: null, status: 0, dropped: false };
      this.log.push(entry);
      const hold = this.holdRequest && reqMsgs ? this.holdRequest(reqMsgs) : 0;
      if (hold > 0) {
        entry.held = hold;
        await new Promise(r => setTimeout(r, hold));
      }
      const headers = { ...req.headers, host: this.target.host };
      const up = http.request({
        host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers, agent: false,
      }, upRes => {
        const rc = [];
        upRes.on('data', c => rc.push(c));
        upRes.on('end', () => {
          const rbody = Buffer.concat(rc);
          entry.status = upRes.statusCode;
          entry.res = decodeResponse(req, rbody);
          if (this.dropResponse && entry.res && this.dropResponse(reqMsgs || [], entry.res)) {
            // The server handed the reply over; the client never sees it (a lost response).
            entry.dropped = true;
            req.socket.destroy();
            return;
          }
          res.writeHead(upRes.statusCode, upRes.headers);
          res.end(rbody);
        });
      });
      up.on('error', e => {
        entry.status = 502;
        entry.error = e.message;
        if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
        res.end('proxy: ' + e.message);
      });
      // A client that gave up (aborted) does not abort the upstream request: like nginx
      // with a slow upstream, the server still answers and we discard it.
      up.end(body);
    });
  }

  // Every reply message seen so far on `channel` (decoded), in order.
  replies(channel) {
    const out = [];
    for (const e of this.log) for (const m of e.res || []) if (m.channel === channel) out.push(m);
    return out;
  }
}
