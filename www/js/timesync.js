// A clock showing the server's time as estimated by the timesync extension.
import { TimeSyncExtension } from './cometd/cometd.js';
import { createCometD, showStatus, notice } from './demo.js';

const $ = id => document.getElementById(id);
const timesync = new TimeSyncExtension();
const cometd = createCometD({ timesync });
showStatus(cometd);

let samples = 0;
const seen = m => {
  const ts = m.ext && m.ext.timesync;
  if (!ts) return;
  samples++;
  $('samples').textContent = String(samples);
  $('last').textContent = JSON.stringify(ts);
};
cometd.addListener('/meta/handshake', m => {
  seen(m);
  if (m.successful && !(m.ext && m.ext.timesync)) {
    notice($('notice'), 'The server did not answer ext.timesync: the offset below is not measured.', true);
  }
});
cometd.addListener('/meta/connect', seen);
cometd.handshake(reply => {
  if (!reply.successful) notice($('notice'), 'Could not connect: ' + (reply.error || (reply.failure && reply.failure.reason) || 'network error'), true);
});

const fmt = t => { const d = new Date(t); return d.toTimeString().slice(0, 8) + '.' + String(d.getMilliseconds()).padStart(3, '0'); };
function tick() {
  $('server').textContent = fmt(timesync.getServerTime());
  $('local').textContent = fmt(Date.now());
  $('offset').textContent = String(timesync.getTimeOffset());
  $('lag').textContent = String(timesync.getNetworkLag());
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
