// Chat with rooms on the official CometD client, in the shape of CometD's own chat demo:
//   /chat/<room>            broadcast: {user, chat} and join/leave notices {user, membership, chat}
//   /service/members        {user, room:"/chat/<room>"}: the server records the member and
//                           publishes the member list on /members/<room>
//   /members/<room>         the member list (an array of names, as CometD's ChatService sends it;
//                           {members:[...]} objects are understood too)
//   /service/privatechat    {room, user, chat, peer}: delivered to that member and to the sender
//                           with scope:"private"
// The services are server-side; when the server has none the page says so instead of failing.
// A page reload keeps the session (ReloadExtension): same clientId, subscriptions and membership.
import { AckExtension, ReloadExtension } from './cometd/cometd.js';
import { createCometD, showStatus, notice, appendLine, params } from './demo.js';

const $ = id => document.getElementById(id);
// ?ack=1: the reliable chat (CometD's ack extension).
const reliable = params.get('ack') === '1';
const SERVICE_WAIT_MS = 3000;

const RELOAD_KEY = 'bx.chat.' + (reliable ? 'ack' : 'plain');
const cometd = createCometD(reliable ? { ack: new AckExtension(), reload: new ReloadExtension() } : { reload: new ReloadExtension() });
window.bxChat = { cometd }; // for the console (and the browser test)
showStatus(cometd);

const state = { user: null, room: null, subs: [], membersSeen: false, membersTimer: null, pendingPrivate: new Map(), seq: 0 };
const noticeEl = $('notice');

if (reliable) {
  document.querySelector('header h1').textContent = 'Reliable chat (ack extension)';
  document.title = 'Reliable chat — bayeux-fcgi';
  $('ackInfo').hidden = false;
  cometd.addListener('/meta/connect', m => {
    if (m.ext && typeof m.ext.ack === 'number') $('ackBatch').textContent = String(m.ext.ack);
  });
}

// Re-handshake (session expired, server restarted): subscriptions are gone server-side;
// CometD's advice is to subscribe again from the handshake listener.
cometd.addListener('/meta/handshake', m => {
  if (m.successful && state.room) {
    if (reliable && !(m.ext && m.ext.ack === true)) notice(noticeEl, 'The server did not enable the ack extension: delivery is not acknowledged.', true);
    enterRoom();
  }
});

function systemLine(text) { appendLine($('messages'), 'msg system', [[null, text]]); }

function onChat(message) {
  const d = message.data || {};
  if (d.membership) return systemLine(String(d.chat || `${d.user} ${d.membership === 'join' ? 'has joined' : 'has left'}`));
  const priv = d.scope === 'private';
  if (priv && d.user === state.user) {
    // The server's copy of our own private message: the service exists and accepted it.
    for (const [k, p] of state.pendingPrivate) if (p.chat === d.chat) { clearTimeout(p.timer); state.pendingPrivate.delete(k); break; }
  }
  appendLine($('messages'), priv ? 'msg private' : 'msg', [
    ['user', String(d.user || '?')], [null, priv ? ' (private): ' : ': '], ['text', String(d.chat ?? '')],
  ]);
}

function renderMembers(names) {
  const ul = $('members');
  ul.replaceChildren(...names.map(n => { const li = document.createElement('li'); li.textContent = String(n); return li; }));
  $('memberCount').textContent = `(${names.length})`;
  const peer = $('peer');
  const current = peer.value;
  peer.replaceChildren(new Option('everyone', ''), ...names.filter(n => n !== state.user).map(n => new Option(String(n), String(n))));
  if ([...peer.options].some(o => o.value === current)) peer.value = current;
}

function onMembers(message) {
  const d = message.data;
  const list = Array.isArray(d) ? d : (d && Array.isArray(d.members) ? d.members : null);
  if (d && !Array.isArray(d)) {
    if (d.joined) systemLine(`${d.joined} joined the room`);
    if (d.left) systemLine(`${d.left} left the room`);
  }
  if (!list) return;
  state.membersSeen = true;
  clearTimeout(state.membersTimer);
  if (noticeEl.dataset.kind === 'members') { notice(noticeEl, ''); delete noticeEl.dataset.kind; }
  renderMembers(list);
}

function failed(what) {
  return reply => {
    if (reply.successful) return;
    notice(noticeEl, `${what} failed: ${reply.error || (reply.failure && reply.failure.reason) || 'network error'}`, true);
  };
}

function enterRoom() {
  const room = state.room;
  const resumed = state.resumed;
  state.resumed = false;
  state.membersSeen = false;
  cometd.batch(() => {
    state.subs = [
      cometd.subscribe(`/chat/${room}`, onChat, failed(`subscribe /chat/${room}`)),
      cometd.subscribe(`/members/${room}`, onMembers, failed(`subscribe /members/${room}`)),
    ];
    if (!resumed) cometd.publish(`/chat/${room}`, { user: state.user, membership: 'join', chat: `${state.user} has joined` }, failed('join notice'));
    cometd.publish('/service/members', { user: state.user, room: `/chat/${room}` }, failed('/service/members'));
  });
  clearTimeout(state.membersTimer);
  state.membersTimer = setTimeout(() => {
    if (state.membersSeen) return;
    notice(noticeEl, 'No member list: the server did not answer on /service/members (service not installed?). ' +
      'Chat in the room still works.');
    noticeEl.dataset.kind = 'members';
    renderMembers([state.user]);
  }, SERVICE_WAIT_MS);
}

function join(user, room, resumed) {
  state.user = user; state.room = room; state.resumed = resumed;
  $('joinForm').hidden = true; $('joined').hidden = false;
  document.title = `${user} in ${room} — chat`;
  notice(noticeEl, '');
  cometd.handshake(reply => {
    if (!reply.successful) notice(noticeEl, 'Could not connect: ' + (reply.error || (reply.failure && reply.failure.reason) || 'network error'), true);
  });
  $('phrase').focus();
}

$('joinForm').addEventListener('submit', e => {
  e.preventDefault();
  const user = $('username').value.trim();
  const room = $('room').value.trim();
  if (!user || !/^[A-Za-z0-9_-]+$/.test(room)) return notice(noticeEl, 'A name and a room of letters, digits, _ or - please.', true);
  join(user, room, false);
});

// Back from a reload: the ReloadExtension replays the handshake and resumes the same session.
try {
  const saved = JSON.parse(sessionStorage.getItem(RELOAD_KEY) || 'null');
  sessionStorage.removeItem(RELOAD_KEY);
  if (saved && saved.user && saved.room) join(saved.user, saved.room, true);
} catch { /* no sessionStorage: a plain page */ }

$('sendForm').addEventListener('submit', e => {
  e.preventDefault();
  const chat = $('phrase').value.trim();
  if (!chat) return;
  const peer = $('peer').value;
  if (!peer) {
    cometd.publish(`/chat/${state.room}`, { user: state.user, chat }, failed('send'));
  } else {
    const key = ++state.seq;
    const timer = setTimeout(() => {
      state.pendingPrivate.delete(key);
      notice(noticeEl, `Private message to ${peer} not confirmed: the server did not answer on /service/privatechat (service not installed?).`, true);
    }, SERVICE_WAIT_MS);
    state.pendingPrivate.set(key, { chat, timer });
    cometd.publish('/service/privatechat', { room: `/chat/${state.room}`, user: state.user, chat, peer }, failed('private message'));
  }
  $('phrase').value = '';
});

function leave() {
  if (!state.room) return;
  const room = state.room;
  cometd.batch(() => {
    cometd.publish(`/chat/${room}`, { user: state.user, membership: 'leave', chat: `${state.user} has left` });
    for (const s of state.subs) cometd.unsubscribe(s);
  });
  state.room = null; state.subs = [];
  clearTimeout(state.membersTimer);
  sessionStorage.removeItem(RELOAD_KEY);
  cometd.disconnect();
  $('joined').hidden = true; $('joinForm').hidden = false;
  $('messages').replaceChildren(); renderMembers([]);
}
$('leave').addEventListener('click', leave);
// Leaving the page while in a room (reload, navigation): keep the session for the next page load of
// this tab; a tab that does not come back lets it expire after maxInterval.
window.addEventListener('pagehide', () => {
  if (!state.room) return;
  sessionStorage.setItem(RELOAD_KEY, JSON.stringify({ user: state.user, room: state.room }));
  cometd.reload();
});
