// Shared helpers of the demo pages: one CometD client on this server's /cometd, a status badge.
// Query parameters: ?transport=long-polling|callback-polling|websocket (comma list; default: the
// client's own order, websocket first, falling back to long-polling when the server offers no
// websocket), ?log=debug for the client's console log.
import {
  CometD, LongPollingTransport, CallbackPollingTransport, WebSocketTransport,
} from './cometd/cometd.js';

export const params = new URLSearchParams(location.search);

const TRANSPORTS = {
  'long-polling': () => new LongPollingTransport(),
  'callback-polling': () => new CallbackPollingTransport(),
  websocket: () => new WebSocketTransport(),
};

// A configured (not yet handshaken) client; extensions: {name: instance}.
export function createCometD(extensions = {}) {
  const cometd = new CometD();
  if (params.get('transport')) {
    cometd.unregisterTransports();
    for (const t of params.get('transport').split(',')) {
      if (!TRANSPORTS[t]) throw new Error('unknown transport ' + t);
      cometd.registerTransport(t, TRANSPORTS[t]());
    }
  }
  for (const [name, ext] of Object.entries(extensions)) cometd.registerExtension(name, ext);
  cometd.configure({
    url: new URL('/cometd', location.href).href,
    logLevel: params.get('log') || 'warn',
  });
  return cometd;
}

// Keeps the #status badge in line with the connection.
export function showStatus(cometd, el = document.getElementById('status')) {
  const set = (cls, text) => { el.className = cls; el.textContent = text; };
  set('disconnected', 'not connected');
  cometd.addListener('/meta/handshake', m => {
    if (m.successful) set('connecting', 'handshaken');
    else set('failed', 'handshake failed: ' + (m.error || (m.failure && m.failure.reason) || 'network'));
  });
  cometd.addListener('/meta/connect', m => {
    if (cometd.isDisconnected()) return set('disconnected', 'disconnected');
    if (m.successful) set('connected', 'connected via ' + cometd.getTransport().type);
    else set('connecting', 'connection lost, retrying…');
  });
  cometd.addListener('/meta/disconnect', m => { if (m.successful) set('disconnected', 'disconnected'); });
}

// Sets the text of a notice element (empty hides it).
export function notice(el, text, isError = false) {
  el.textContent = text || '';
  el.classList.toggle('error', !!isError);
}

// Appends a line of text (never HTML) with a CSS class to a scrolling log.
export function appendLine(container, cls, parts) {
  const div = document.createElement('div');
  div.className = cls;
  for (const [c, t] of parts) {
    const span = document.createElement('span');
    if (c) span.className = c;
    span.textContent = t;
    div.appendChild(span);
  }
  container.appendChild(div);
  container.scrollTop = container.scrollHeight;
  return div;
}
