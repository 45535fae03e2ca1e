// Echo by remote call: remoteCall("echo") → /service/echo → reply to the caller only.
import { createCometD, showStatus, notice, appendLine } from './demo.js';

const $ = id => document.getElementById(id);
const cometd = createCometD();
showStatus(cometd);
cometd.handshake(reply => {
  if (!reply.successful) notice($('notice'), 'Could not connect: ' + (reply.error || (reply.failure && reply.failure.reason) || 'network error'), true);
});

$('echoForm').addEventListener('submit', e => {
  e.preventDefault();
  const text = $('text').value;
  const t0 = performance.now();
  cometd.remoteCall('echo', { text }, 5000, reply => {
    const ms = (performance.now() - t0).toFixed(1);
    if (reply.successful) {
      notice($('notice'), '');
      appendLine($('messages'), 'msg echo', [['user', `${ms} ms `], ['text', String(reply.data && reply.data.text)]]);
    } else {
      const why = reply.error === '406::timeout' ? 'no answer within 5 s (is /service/echo installed on the server?)'
        : (reply.error || (reply.failure && reply.failure.reason) || 'network error');
      notice($('notice'), 'Echo failed: ' + why, true);
      appendLine($('messages'), 'msg system', [[null, `failed after ${ms} ms: ${why}`]]);
    }
  });
});
