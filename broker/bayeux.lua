#!lua name=bayeux
-- bayeux — the broker's Redis function library. Contract: broker/API.md; keys: broker/KEYS.md.
--
-- Every function is called FCALL <name> 0 <prefix> args... and works in three phases:
--   1. validate arguments (an error names the argument);
--   2. read every key it will write, checking its type (an error names the key);
--   3. write.
-- Redis does not roll back a function that fails half-way, so nothing may fail after
-- the first write: phases 1 and 2 must catch every error. Keys are derived inside the
-- functions (fan-out), see KEYS.md on Redis Cluster.
local VERSION = 'dev'

local ID_MAX = 64         -- longest client/browser/worker id or token
local CHANNEL_MAX = 1024  -- longest channel name
local PUSH_CHUNK = 1000   -- arguments per variadic call (Lua's C stack limits unpack)
-- Element 1 of every session queue: the queue exists exactly as long as the session, so
-- one LLEN per recipient tells a publish whether the session lives, whether the key is
-- a list and how long the queue is. Messages are never empty, so '' cannot be one.
local SENTINEL = ''

-- ---------------------------------------------------------------- helpers

local function fail(fn, msg)
  error({err = 'ERR ' .. fn .. ': ' .. msg})
end

-- Argument checkers: each returns the value or raises an error naming the argument.
local function arg_count(fn, args, min, max)
  if #args < min or (max and #args > max) then
    if max == min then
      fail(fn, 'wrong number of arguments (want ' .. min .. ' after numkeys, got ' .. #args .. ')')
    end
    fail(fn, 'wrong number of arguments (want ' .. min .. (max and ('..' .. max) or '+') ..
         ' after numkeys, got ' .. #args .. ')')
  end
end

local function arg_prefix(fn, v)
  if #v > ID_MAX or v:find('[%s{}]') then
    fail(fn, 'prefix: at most ' .. ID_MAX .. ' chars, no spaces or braces')
  end
  return v
end

local function arg_id(fn, name, v, allow_empty)
  if v == '' and allow_empty then return v end
  if #v < 1 or #v > ID_MAX or v:find('[^%w_%-%.]') then
    fail(fn, name .. ': 1..' .. ID_MAX .. ' chars of [A-Za-z0-9_.-] expected, got "' ..
         v:sub(1, ID_MAX) .. '"')
  end
  return v
end

local function arg_int(fn, name, v, min)
  if not v:match('^%-?%d+$') or #v > 15 then
    fail(fn, name .. ': integer expected, got "' .. v:sub(1, 32) .. '"')
  end
  local n = tonumber(v)
  if min and n < min then fail(fn, name .. ': must be >= ' .. min .. ', got ' .. v) end
  return n
end

local function arg_flag(fn, name, v)
  if v ~= '0' and v ~= '1' then fail(fn, name .. ': 0 or 1 expected, got "' .. v:sub(1, 32) .. '"') end
  return v == '1'
end

local function arg_channel(fn, name, v)
  if #v < 2 or #v > CHANNEL_MAX or v:sub(1, 1) ~= '/' then
    fail(fn, name .. ': channel name "/..." of 2..' .. CHANNEL_MAX .. ' chars expected, got "' ..
         v:sub(1, 64) .. '"')
  end
  return v
end

local function arg_nonempty(fn, name, v)
  if v == '' then fail(fn, name .. ': must not be empty') end
  return v
end

local function arg_transport(fn, v)
  if #v > ID_MAX or v:find('[^%w%-]') then fail(fn, 'transport: name of [A-Za-z0-9-] expected') end
  return v
end

-- A key of the wrong type under our prefix is someone else's data: refuse to touch it.
local function wrongtype(key, got, want)
  error({err = 'WRONGTYPE key ' .. key .. ' holds a ' .. got .. ', expected a ' .. want})
end

-- Check a key that will only be written (never read) by the caller.
local function need(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then wrongtype(key, t, want) end
end

-- A read that doubles as the type check: a WRONGTYPE error names the key.
local function rd(want, key, cmd, ...)
  local r = redis.pcall(cmd, key, ...)
  if type(r) == 'table' and r['err'] then
    if r['err']:find('^WRONGTYPE') then wrongtype(key, redis.call('TYPE', key)['ok'], want) end
    error(r)
  end
  return r
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- K(P)'s table of closures cost ~2 µs per call (measured), so it is built once per prefix; the cache
-- is bounded so a caller cycling through prefixes cannot grow the library's memory.
local K_cache, K_cached = {}, 0
local function K_build(P)
  return {
    P = P,
    expiry = P .. 'expiry',
    stats = P .. 'stats',
    parked = P .. 'parked',
    ch = function(c) return P .. 'ch:' .. c end,
    browser = function(b) return P .. 'browser:' .. b end,
    wake = function(w) return P .. 'wake:' .. w end,
    room = function(r) return P .. 'room:' .. r end,
    svc = function(c) return P .. 'svc:' .. c end,
    req = function(id) return P .. 'req:' .. id end,
    reqexp = P .. 'reqexp',
    reqseq = P .. 'reqseq',
    user = function(u) return P .. 'user:' .. u end,
  }
end

local function K(P)
  local k = K_cache[P]
  if k then return k end
  k = K_build(P)
  if K_cached < 16 then K_cache[P], K_cached = k, K_cached + 1 end
  return k
end

-- The keys of one session; they share the hash tag {cid}.
local function SK(P, cid)
  local base = P .. '{' .. cid .. '}:'
  return { s = base .. 's', subs = base .. 'subs', q = base .. 'q', f = base .. 'f', m = base .. 'm' }
end

-- cmd key list[first..last] in chunks; returns the replies (for reads).
local function chunked(cmd, key, list, first, last)
  local out = {}
  local i = first
  while i <= last do
    local j = math.min(last, i + PUSH_CHUNK - 1)
    out[#out + 1] = redis.call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
  return out
end

-- Session keys all get the same safety-net TTL. With sess and now (the hot paths bx_connect and
-- bx_drain), only when the last refresh (field tx) is older than a quarter of it: five PEXPIREs per
-- poll were a quarter of the broker's commands. Keys created between refreshes get their TTL
-- where they are created (drain_write, recipients_write). Returns whether it refreshed.
local function expire_session(sk, ttl, sess, now)
  if sess and now and sess.tx and now - sess.tx < ttl / 4 then return false end
  redis.call('PEXPIRE', sk.s, ttl)
  redis.call('PEXPIRE', sk.subs, ttl)
  redis.call('PEXPIRE', sk.q, ttl)
  redis.call('PEXPIRE', sk.f, ttl)
  redis.call('PEXPIRE', sk.m, ttl)
  if sess and now then redis.call('HSET', sk.s, 'tx', now) end
  return true
end

local function stat(k, name, n)
  if n ~= 0 then redis.call('HINCRBY', k.stats, name, n) end
end

-- Load the session hash fields we need; nil when the session does not exist.
-- Fields: st b t w k bn pk tx ww wa ack ('' pk = none).
local function load_session(sk)
  local v = rd('hash', sk.s, 'HMGET', 'st', 'b', 't', 'w', 'k', 'bn', 'pk', 'tx', 'ww', 'wa', 'ack')
  if not v[1] then return nil end
  local pk = v[7] ~= '' and v[7] or nil
  return { st = v[1], b = v[2] or '', t = v[3] or '', w = v[4], k = v[5], bn = v[6], pk = pk, tx = tonumber(v[8]),
           ww = v[9], wa = tonumber(v[10]), ack = v[11] == '1' }
end

-- The confirm window (API.md): the worker that was handed the session's last batch (field ww, at
-- time wa) confirms it right after writing the reply, over its own Redis connection. The client's
-- next /meta/connect can reach Redis through another worker first; the batch is still in flight
-- then, and returning it would deliver it twice. So for CONFIRM_GRACE_MS after the hand-out a
-- request of another worker waits for that confirm instead (sessions without the ack extension:
-- with it the client's ext.ack decides). After the grace the batch counts as not written (its worker
-- died, or its write failed) and goes out again. Returns the ms left to wait, 0 = do not wait.
local CONFIRM_GRACE_MS = 1000
local function writer_wait(sess, me, now)
  if sess.ack or not sess.ww or sess.ww == '' or sess.ww == me then return 0 end
  local left = (sess.wa or 0) + CONFIRM_GRACE_MS - now
  return left > 0 and left or 0
end

-- The browser check of API.md: empty browser argument = skip.
local function browser_ok(sess, browser)
  return browser == '' or sess.b == browser
end

-- Split an in-flight entry "<batch>|<json>".
-- Never fails (it runs in write phases): an entry without a tag counts as batch 0.
local function inflight_split(e)
  local bar = e:find('|', 1, true)
  local batch = bar and tonumber(e:sub(1, bar - 1))
  if not batch then return 0, e end
  return batch, e:sub(bar + 1)
end

-- Count in-flight entries (oldest first) tagged <= batch.
local function inflight_upto(list, batch)
  local n = 0
  for i = 1, #list do
    if inflight_split(list[i]) > batch then break end
    n = n + 1
  end
  return n
end

-- Forget a parked request (unpark): fields w k and the wake-up entry.
-- The caller has type-checked Pparked.
local function unpark(k, sk, cid, sess)
  redis.call('HDEL', sk.s, 'w', 'k')
  redis.call('HDEL', k.parked, cid)
  sess.w, sess.k = nil, nil
end

-- Read phase of a drain: the queue (without its sentinel) and the in-flight list,
-- type-checked. has_sentinel is false for a queue of an older library version.
local function drain_read(sk)
  local queued = rd('list', sk.q, 'LRANGE', 0, -1)
  local has_sentinel = queued[1] == SENTINEL
  if has_sentinel then table.remove(queued, 1) end
  local inflight = rd('list', sk.f, 'LRANGE', 0, -1)
  return queued, inflight, has_sentinel
end

-- Leave the queue holding just its sentinel (the caller's expire_session sets its TTL).
local function queue_reset(sk, has_sentinel)
  if has_sentinel then
    redis.call('LTRIM', sk.q, 0, 0)
  else
    redis.call('DEL', sk.q)
    redis.call('RPUSH', sk.q, SENTINEL)
  end
end

-- A new batch number for the session (field bn, sess.bn is its value as loaded). It is the
-- time in ms unless that is not above the last one: batch numbers never go backwards, even
-- when Redis restarts from an older state (AOF rolled back, failover to a lagging replica),
-- so a client's ext.ack from before can never match, and drop, a batch it has not seen.
local function batch_after(bn, now)
  return math.max((tonumber(bn) or 0) + 1, now)
end

local function next_batch(sk, bn, now)
  local b = batch_after(bn, now)
  redis.call('HSET', sk.s, 'bn', string.format('%d', b))
  return b
end

-- Write phase of a drain: every queued message moves to the in-flight list tagged
-- with a new batch number. Appends batch and every in-flight JSON (oldest first) to out.
local function drain_write(sk, queued, inflight, dropped, out, has_sentinel, ttl, bn, now)
  local batch = next_batch(sk, bn, now)
  out[#out + 1] = batch
  for i = dropped + 1, #inflight do
    local _, json = inflight_split(inflight[i])
    out[#out + 1] = json
  end
  if #queued > 0 then
    local tagged = {}
    local tag = string.format('%d|', batch)
    for i = 1, #queued do
      tagged[i] = tag .. queued[i]
      out[#out + 1] = queued[i]
    end
    chunked('RPUSH', sk.f, tagged, 1, #tagged)
    if #inflight - dropped == 0 then redis.call('PEXPIRE', sk.f, ttl) end -- created just now
  end
  if #queued > 0 or not has_sentinel then queue_reset(sk, has_sentinel) end
  return batch
end

local members_notice -- defined with the services below; removal publishes member lists
local user_add, presence_notice -- services: a session joins its user's set; presence messages
local requests_expire -- external services: calls past their deadline get their timeout error (bx_sweep)

-- Removing a session, read phase: type-check everything the write phase touches.
-- sess may be nil (hash already expired by its TTL). Returns the plan for removal_write.
local function removal_read(k, sk, cid, sess)
  local subs = rd('set', sk.subs, 'SMEMBERS')
  for _, c in ipairs(subs) do need(k.ch(c), 'set') end
  rd('list', sk.q, 'LLEN')
  rd('list', sk.f, 'LLEN')
  need(k.parked, 'hash')
  if sess and sess.b ~= '' then need(k.browser(sess.b), 'set') end
  -- services: room memberships (room -> member name) and the session's user
  local rooms = rd('hash', sk.m, 'HGETALL')
  for i = 1, #rooms, 2 do need(k.room(rooms[i]), 'hash') end
  local uv = rd('hash', sk.s, 'HMGET', 'u', 'pc')
  local user = uv[1]
  if user == '' then user = nil end
  if user then need(k.user(user), 'set') end
  return { k = k, sk = sk, cid = cid, sess = sess, subs = subs, rooms = rooms, user = user, pc = uv[2] or '' }
end

-- Removing a session, write phase: every trace goes; a parked worker gets "d <token>".
local function removal_write(plan)
  local k, sk, cid, sess = plan.k, plan.sk, plan.cid, plan.sess
  for _, c in ipairs(plan.subs) do redis.call('SREM', k.ch(c), cid) end
  if sess and sess.w and sess.k then
    redis.call('PUBLISH', k.wake(sess.w), 'd ' .. sess.k)
  end
  if sess and sess.b ~= '' then redis.call('SREM', k.browser(sess.b), cid) end
  redis.call('DEL', sk.s, sk.subs, sk.q, sk.f, sk.m)
  redis.call('HDEL', k.parked, cid)
  redis.call('ZREM', k.expiry, cid)
  if plan.user then
    redis.call('SREM', k.user(plan.user), cid)
    -- the user's last session went: presence "left"
    if plan.pc ~= '' and redis.call('SCARD', k.user(plan.user)) == 0 then
      presence_notice(k, plan.pc, plan.user, 'left')
    end
  end
  for i = 1, #plan.rooms, 2 do
    local room, name = plan.rooms[i], plan.rooms[i + 1]
    -- the name may have been taken over by a newer session since (CometD's put semantics)
    if redis.call('HGET', k.room(room), name) == cid then
      redis.call('HDEL', k.room(room), name)
      members_notice(k, room)
    end
  end
end

-- Notify the workers holding parked polls of these sessions: at most two PUBLISHes per worker.
-- parked: list of {cid, worker[, push]}, already taken out of Pparked (recipients_parked).
-- Plain entries: "w cid1 cid2 ..." (the worker drains them). Pushed entries (their messages are
-- in-flight already, see recipients_write) travel in one "p" payload per worker, answered
-- without another broker call:
--   p <npool> <nsess>\n  then npool times <len>:<message>  then nsess times \n<cid> <token> <batch> <i,j,...>
-- (i, j: 1-based indexes into the pool, in delivery order), and for a websocket connect that stays
-- held " <prev>": the session's batch number before this one.
local function wake_workers(k, parked)
  local by_worker, order = {}, {}
  for _, p in ipairs(parked) do
    local w = p[2]
    if not by_worker[w] then
      by_worker[w] = { plain = { 'w' }, pool = {}, index = {}, sess = {} }
      order[#order + 1] = w
    end
    local b = by_worker[w]
    local push = p[3]
    if push and push.batch then
      local idx = {}
      for i, m in ipairs(push.msgs) do
        local j = b.index[m]
        if not j then
          j = #b.pool + 1
          b.pool[j], b.index[m] = #m .. ':' .. m, j
        end
        idx[i] = j
      end
      b.sess[#b.sess + 1] = string.format('\n%s %s %d %s', p[1], push.token, push.batch, table.concat(idx, ',')) ..
                            (push.ws and string.format(' %d', push.prev) or '')
    else
      b.plain[#b.plain + 1] = p[1]
    end
  end
  for _, w in ipairs(order) do
    local b = by_worker[w]
    if #b.plain > 1 then redis.call('PUBLISH', k.wake(w), table.concat(b.plain, ' ')) end
    if #b.sess > 0 then
      redis.call('PUBLISH', k.wake(w), 'p ' .. #b.pool .. ' ' .. #b.sess .. '\n' .. table.concat(b.pool) ..
                 table.concat(b.sess))
    end
  end
  return #order
end

-- ---------------------------------------------------------------- functions

-- keys: P{cid}:s P{cid}:subs P{cid}:q P{cid}:f  Pexpiry  Pbrowser:<b>  Pstats (all derived)
-- args: prefix cid browser transport expiry_ms ttl_ms ack(0/1) user
-- returns: 1
-- errors: bad argument; session already exists; wrong-type key
local function handshake(_, args)
  local fn = 'bx_handshake'
  arg_count(fn, args, 8, 11)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local browser = arg_id(fn, 'browser', args[3], true)
  local transport = arg_transport(fn, args[4])
  local expiry_ms = arg_int(fn, 'expiry_ms', args[5], 0)
  local ttl = arg_int(fn, 'ttl_ms', args[6], 1)
  local ack = arg_flag(fn, 'ack', args[7]) and '1' or '0'
  local user = args[8]
  if #user > 256 then fail(fn, 'user: at most 256 bytes') end
  -- security policy (optional): authenticated flag, roles "r1,r2", presence channel ("" none)
  local authed = args[9] and arg_flag(fn, 'authenticated', args[9]) and '1' or '0'
  local roles = args[10] or ''
  if #roles > 4096 then fail(fn, 'roles: at most 4096 bytes') end
  local pc = args[11] or ''
  if pc ~= '' then arg_channel(fn, 'presence_channel', pc) end
  local k, sk = K(P), SK(P, cid)
  if user ~= '' then need(k.user(user), 'set') end

  local t = redis.call('TYPE', sk.s)['ok']
  if t ~= 'none' then fail(fn, 'cid: session ' .. cid .. ' already exists (' .. sk.s .. ')') end
  need(k.expiry, 'zset')
  need(k.stats, 'hash')
  need(sk.subs, 'set')
  need(sk.q, 'list')
  need(sk.f, 'list')
  need(sk.m, 'hash')
  if browser ~= '' then need(k.browser(browser), 'set') end

  local now = now_ms()
  redis.call('DEL', sk.subs, sk.q, sk.f, sk.m) -- leftovers of an expired namesake
  redis.call('HSET', sk.s, 'ct', now, 'ls', now, 'b', browser, 't', transport, 'st', 'h',
             'ack', ack, 'bn', 0, 'u', user, 'a', authed, 'r', roles, 'pc', pc)
  redis.call('RPUSH', sk.q, SENTINEL)
  redis.call('PEXPIRE', sk.s, ttl)
  redis.call('PEXPIRE', sk.q, ttl)
  redis.call('ZADD', k.expiry, now + expiry_ms, cid)
  if browser ~= '' then
    redis.call('SADD', k.browser(browser), cid)
    redis.call('PEXPIRE', k.browser(browser), ttl)
  end
  stat(k, 'handshakes', 1)
  if user ~= '' then user_add(k, user, cid, ttl, pc) end
  return 1
end

-- Count the other sessions of this browser that hold a parked HTTP poll (maxSessionsPerBrowser):
-- members of Pbrowser:<b> with w set whose last connect was not a websocket one (as in CometD, a
-- websocket connect holds no HTTP connection). One SMEMBERS when the browser has one session; a
-- separate set of held polls cost five commands per poll to keep up to date.
local function held_others(k, browser, cid)
  local live = 0
  for _, m in ipairs(rd('set', k.browser(browser), 'SMEMBERS')) do
    if m ~= cid then
      local v = rd('hash', SK(k.P, m).s, 'HMGET', 'w', 't')
      if v[1] and v[2] ~= 'websocket' then live = live + 1 end
    end
  end
  return live
end

-- One connect's arguments, args[i..i+10]: cid browser worker token ack_k hold timeout_ms expiry_ms
-- ttl_ms max_sessions_per_browser transport; prev: the connect before it in the same call, or nil.
local CONNECT_ARGS = 11
local CONNECT_FIELDS = { -- offset after cid: field, checker, its last argument, name in errors
  { 'browser', arg_id, true, 'browser' },
  { 'worker', arg_id, nil, 'worker' },
  { 'token', arg_id, nil, 'token' },
  { 'ack_k', arg_int, nil, 'ack_k' },
  { 'hold', arg_flag, nil, 'hold' },
  { 'timeout_ms', arg_int, 0, 'timeout_ms' },
  { 'expiry_ms', arg_int, 0, 'expiry_ms' },
  { 'ttl', arg_int, 1, 'ttl_ms' },
  { 'max_spb', arg_int, nil, 'max_sessions_per_browser' },
  { 'transport', function(fn, _, v) return arg_transport(fn, v) end, nil, 'transport' },
}
local function connect_args(fn, args, i, prev)
  local c = { cid = arg_id(fn, 'cid', args[i]) }
  -- A worker's batch repeats most arguments (worker, timeouts, transport): a value equal to the
  -- previous connect's is valid already (checking every one was a fifth of a batched connect).
  local p = prev and i - CONNECT_ARGS
  for o, f in ipairs(CONNECT_FIELDS) do
    local v = args[i + o]
    if p and v == args[p + o] then
      c[f[1]] = prev[f[1]]
    else
      c[f[1]] = f[2](fn, f[4], v, f[3])
    end
  end
  return c
end

-- One connect, read phase then write phase. The caller has type-checked Pexpiry, Pstats and
-- Pparked, and writes what acc gathers after the last connect of its call: the expiry of each
-- session (one ZADD) and the connects counter (one HINCRBY).
local function connect_one(k, c, now, acc)
  local cid = c.cid
  local sk = SK(k.P, cid)
  local sess = load_session(sk)
  if not sess or not browser_ok(sess, c.browser) then return { 'unknown' } end
  local queued, inflight, has_sentinel = drain_read(sk)
  local dropped = 0
  if c.ack_k >= 0 then dropped = inflight_upto(inflight, c.ack_k) end
  local pending = #queued + #inflight - dropped
  -- another worker may still be writing the in-flight batch: wait for its confirm (queued messages
  -- wait too: they must not overtake it)
  local wait = #inflight > dropped and writer_wait(sess, c.worker, now) or 0
  local deliver = pending > 0 and wait == 0
  local first = sess.st == 'h'
  local tc = sess.t ~= c.transport
  local held_live = 0
  local want_park = not deliver and c.hold and not first
  local max_spb = c.max_spb
  -- No type check of Pbrowser:<b> of its own: held_others' SMEMBERS is one, and the only write
  -- to it here is a PEXPIRE, which takes any type.
  if sess.b ~= '' and want_park and max_spb >= 0 then held_live = held_others(k, sess.b, cid) end

  -- writes
  if dropped > 0 then redis.call('LTRIM', sk.f, dropped, -1) end
  if sess.w and sess.k and sess.k ~= c.token then
    redis.call('PUBLISH', k.wake(sess.w), 's ' .. sess.k)
    unpark(k, sk, cid, sess)
  end
  local fields = { 'st', 'c', 't', c.transport, 'ls', now }
  if sess.pk then fields[7], fields[8] = 'pk', '' end
  if pending == 0 and not has_sentinel then queue_reset(sk, false) end
  local reply = { '', first and 1 or 0, tc and 1 or 0 }
  local expiry = now + c.expiry_ms
  if deliver then
    if sess.w then unpark(k, sk, cid, sess) end
    reply[1] = 'msgs'
    local n = #fields
    fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] = 'ww', c.worker, 'wa', now
    drain_write(sk, queued, inflight, dropped, reply, has_sentinel, c.ttl, sess.bn, now)
  elseif want_park and sess.b ~= '' and max_spb >= 0 and held_live >= max_spb then
    if sess.w then unpark(k, sk, cid, sess) end
    reply[1], reply[4] = 'multi', 0
  elseif want_park then
    -- xm, tl: what a publish that pushes to this poll needs (its expiry and TTL, recipients_write)
    local n = #fields
    fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] = 'w', c.worker, 'k', c.token
    fields[n + 5], fields[n + 6], fields[n + 7], fields[n + 8] = 'xm', c.expiry_ms, 'tl', c.ttl
    redis.call('HSET', k.parked, cid, c.worker)
    reply[1], reply[4] = 'parked', tonumber(sess.bn) or 0
    -- waiting for another worker's confirm: hold at most until the grace ends, then the final
    -- drain sends the batch again if that confirm never came
    if wait > 0 then reply[5] = wait end
    expiry = now + c.timeout_ms + c.expiry_ms
  else
    if sess.w then unpark(k, sk, cid, sess) end
    reply[1], reply[4] = 'empty', 0
  end
  redis.call('HSET', sk.s, unpack(fields))
  if expire_session(sk, c.ttl, sess, now) and sess.b ~= '' then redis.call('PEXPIRE', k.browser(sess.b), c.ttl) end
  local z = #acc.zadd
  acc.zadd[z + 1], acc.zadd[z + 2] = expiry, cid
  acc.n = acc.n + 1
  return reply
end

-- The writes gathered by connect_one (and the type checks they rely on, done before the first).
local function connect_acc(k)
  need(k.expiry, 'zset')
  need(k.stats, 'hash')
  need(k.parked, 'hash')
  return { zadd = {}, n = 0 }
end

local function connect_acc_write(k, acc)
  if #acc.zadd > 0 then chunked('ZADD', k.expiry, acc.zadd, 1, #acc.zadd) end
  stat(k, 'connects', acc.n)
end

-- keys: P{cid}:s P{cid}:q P{cid}:f (+subs TTL)  Pexpiry  Pbrowser:<b> (+ the s of its other sessions)  Pstats  Pwake:<W>
-- args: prefix cid browser worker token ack_k hold timeout_ms expiry_ms ttl_ms max_sessions_per_browser transport
-- returns: {status, first, transport_changed, batch, msg...}, status msgs|parked|multi|empty|unknown
local function connect(_, args)
  local fn = 'bx_connect'
  arg_count(fn, args, 1 + CONNECT_ARGS, 1 + CONNECT_ARGS)
  local k = K(arg_prefix(fn, args[1]))
  local c = connect_args(fn, args, 2, nil)
  local acc = connect_acc(k)
  local reply = connect_one(k, c, now_ms(), acc)
  connect_acc_write(k, acc)
  return reply
end

-- keys: as bx_connect, for every connect
-- args: prefix n, then n times the arguments of bx_connect after its prefix
-- returns: array of n replies, each bx_connect's reply or an error naming what failed for that connect
-- A worker's connects that arrive while its previous bx_connect_batch is in flight, in one call:
-- the reconnects after a publish answered hundreds of polls at once spent a third of their ~30 µs
-- on the per-FCALL and per-call overheads shared here (FCALL, type checks, TIME, ZADD, HINCRBY).
-- The connects run one after the other, each as bx_connect would (its own read phase, then its
-- writes), so a connect that fails in its read phase changes nothing and the others go on.
local CONNECT_BATCH_MAX = 1000
local function connect_batch(_, args)
  local fn = 'bx_connect_batch'
  arg_count(fn, args, 2)
  local k = K(arg_prefix(fn, args[1]))
  local n = arg_int(fn, 'n', args[2], 1)
  if n > CONNECT_BATCH_MAX then fail(fn, 'n: at most ' .. CONNECT_BATCH_MAX .. ', got ' .. n) end
  if #args ~= 2 + n * CONNECT_ARGS then
    fail(fn, 'wrong number of arguments (want ' .. (2 + n * CONNECT_ARGS) .. ' for ' .. n ..
         ' connects, got ' .. #args .. ')')
  end
  local cs = {}
  for i = 1, n do cs[i] = connect_args(fn, args, 3 + (i - 1) * CONNECT_ARGS, cs[i - 1]) end
  local acc = connect_acc(k)
  local now, out = now_ms(), {}
  for i = 1, n do
    local ok, r = pcall(connect_one, k, cs[i], now, acc)
    if ok then
      out[i] = r
    else -- Redis hands pcall its errors as strings ("WRONGTYPE key ..."); keep their code
      local e = type(r) == 'table' and r.err or tostring(r)
      out[i] = { err = e:find('^%u+ ') and e or 'ERR ' .. fn .. ': connect ' .. i .. ': ' .. e }
    end
  end
  connect_acc_write(k, acc)
  return out
end

-- keys: P{cid}:s P{cid}:q P{cid}:f  Pexpiry
-- args: prefix cid token final(0/1) expiry_ms ttl_ms [framed]
-- returns: {"gone"} | {"superseded"} | {"msgs", batch, msg...} | {"empty", 0} | {"parked", bn}
-- framed (websocket): in-flight batches up to it were written to the socket by the caller and wait for
-- their bx_confirm: they are kept but not returned (they would arrive twice).
local function drain(_, args)
  local fn = 'bx_drain'
  arg_count(fn, args, 6, 7)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local token = arg_id(fn, 'token', args[3])
  local final = arg_flag(fn, 'final', args[4])
  local expiry_ms = arg_int(fn, 'expiry_ms', args[5], 0)
  local ttl = arg_int(fn, 'ttl_ms', args[6], 1)
  local framed = args[7] and arg_int(fn, 'framed', args[7], 0) or 0
  local k, sk = K(P), SK(P, cid)

  local sess = load_session(sk)
  if not sess then return { 'gone' } end
  -- pushed: a publish moved messages for this poll to in-flight and unparked it (wake_workers);
  -- the worker drains instead of answering from the wake-up (it was busy, or the wake-up was lost)
  local pushed = sess.k ~= token and sess.pk == token
  if sess.k ~= token and not pushed then return { 'superseded' } end
  need(k.expiry, 'zset')
  need(k.parked, 'hash')
  local queued, inflight, has_sentinel = drain_read(sk)
  local skip = framed > 0 and inflight_upto(inflight, framed) or 0
  local now = now_ms()
  -- a pushed poll's batch was handed to this worker (ww); else the worker is the one it is parked at
  local me = pushed and sess.ww or sess.w
  local wait = #inflight > skip and writer_wait(sess, me, now) > 0

  -- writes
  local reply
  if pushed then redis.call('HSET', sk.s, 'pk', '') end
  if #queued + #inflight - skip > 0 and not wait then
    unpark(k, sk, cid, sess)
    reply = { 'msgs' }
    redis.call('HSET', sk.s, 'ww', me or '', 'wa', now)
    drain_write(sk, queued, inflight, skip, reply, has_sentinel, ttl, sess.bn, now)
  elseif final or pushed then
    -- final while another worker's confirm is awaited: answered empty; the client's next connect
    -- gets the batch once confirmed (or again after the grace)
    unpark(k, sk, cid, sess)
    if not has_sentinel and #queued == 0 then queue_reset(sk, false) end
    reply = { 'empty', 0 }
  else
    -- A wake-up found nothing (another path drained it): wake this worker again next time.
    redis.call('HSET', k.parked, cid, sess.w)
    return { 'parked', tonumber(sess.bn) or 0 }
  end
  redis.call('HSET', sk.s, 'ls', now)
  redis.call('ZADD', k.expiry, now + expiry_ms, cid)
  expire_session(sk, ttl, sess, now)
  return reply
end

-- keys: P{cid}:s P{cid}:q P{cid}:f  Pparked
-- args: prefix cid token ttl_ms [known]
-- returns: {"gone"} | {"superseded"} | {"missed", bn} | {"msgs", batch, msg...} | {"parked", bn}
-- Websocket push (CometD sends queued messages in their own frames while /meta/connect stays
-- held): the queue moves to the in-flight list under a new batch, the request stays parked and
-- Pparked lists it again, so the next publish wakes this worker again. Only the messages moved
-- now are returned: older in-flight batches are being written by this worker and are resent by
-- the next connect if their bx_confirm never comes.
local function push(_, args)
  local fn = 'bx_push'
  arg_count(fn, args, 4, 5)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local token = arg_id(fn, 'token', args[3])
  local ttl = arg_int(fn, 'ttl_ms', args[4], 1)
  local known = args[5] and arg_int(fn, 'known', args[5], 0)
  local k, sk = K(P), SK(P, cid)

  local sess = load_session(sk)
  if not sess then return { 'gone' } end
  if sess.k ~= token then return { 'superseded' } end
  -- A batch after the one the worker last heard of was pushed by a publish and its wake-up not yet
  -- written (or lost): a batch pushed now would go out before it, and its confirm would drop it.
  local bn = tonumber(sess.bn) or 0
  if known and bn ~= known then return { 'missed', bn } end
  need(k.parked, 'hash')
  local queued, _, has_sentinel = drain_read(sk)

  -- writes
  redis.call('HSET', k.parked, cid, sess.w)
  if #queued == 0 then
    if not has_sentinel then
      queue_reset(sk, false)
      expire_session(sk, ttl)
    end
    return { 'parked', tonumber(sess.bn) or 0 }
  end
  local reply, now = { 'msgs' }, now_ms()
  drain_write(sk, queued, {}, 0, reply, has_sentinel, ttl, sess.bn, now)
  expire_session(sk, ttl, sess, now) -- lazily, as bx_drain: a push per publish on the hot path
  return reply
end

-- keys: P{cid}:f of each session
-- args: prefix cid batch [cid batch ...] (a worker confirms all the polls of one push wake-up at once)
-- returns: number of in-flight messages dropped (tag <= batch), over all sessions
-- Write phase of a push (a publish's, or bx_confirm's for a held websocket connect): push.msgs go to
-- the in-flight list push.f tagged with a new batch after push.bn (push.batch); the list gets its TTL
-- when this creates it (push.flen, when known, says it exists). A held websocket connect stays parked:
-- its bn is written here and push.prev keeps the one before. Returns the batch as text.
local function push_write(push, now)
  push.batch = batch_after(push.bn, now)
  local bn = string.format('%d', push.batch)
  local tag, msgs = bn .. '|', push.msgs
  if #msgs == 1 then
    redis.call('RPUSH', push.f, tag .. msgs[1])
  else
    local tagged = {}
    for j = 1, #msgs do tagged[j] = tag .. msgs[j] end
    chunked('RPUSH', push.f, tagged, 1, #tagged)
  end
  if not (push.flen and push.flen > 0) then -- a list that exists got its TTL when it was created
    local ttl = push.tl or redis.call('PTTL', push.s)
    if ttl > 0 then redis.call('PEXPIRE', push.f, ttl) end
  end
  if push.ws then
    push.prev = tonumber(push.bn) or 0
    redis.call('HSET', push.s, 'bn', bn)
  end
  return bn
end

-- Read phase of bx_confirm for a session whose in-flight list it empties: the messages a publish left
-- in the queue of its held websocket connect while that batch was written (recipients_parked), to go
-- out now as the next pushed batch; nil when there are none or the session is not such a connect.
local function held_next(sk)
  if rd('list', sk.q, 'LLEN') < 2 then return nil end -- the sentinel alone (or an old-style queue)
  local v = rd('hash', sk.s, 'HMGET', 'w', 'k', 't', 'ack', 'bn', 'tl')
  if not (v[1] and v[2] and v[4] ~= '1') then return nil end
  -- a held HTTP poll that waited for this confirm (writer_wait) while messages queued: a plain wake-up
  if v[3] ~= 'websocket' then return { w = v[1], plain = true } end
  local q = redis.call('LRANGE', sk.q, 0, -1)
  if q[1] ~= SENTINEL then return nil end
  table.remove(q, 1)
  return { w = v[1], token = v[2], bn = v[5], tl = tonumber(v[6]), msgs = q, ws = true, f = sk.f, s = sk.s, flen = 0 }
end

local CONFIRM_SCAN = 32
local function confirm(_, args)
  local fn = 'bx_confirm'
  arg_count(fn, args, 3)
  if #args % 2 ~= 1 then fail(fn, 'cid batch pairs expected') end
  local P = arg_prefix(fn, args[1])
  local plans = {}
  for i = 2, #args, 2 do
    local cid = arg_id(fn, 'cid', args[i])
    plans[#plans + 1] = { cid = cid, sk = SK(P, cid), batch = arg_int(fn, 'batch', args[i + 1], 0) }
  end
  for _, pl in ipairs(plans) do
    -- Tags never decrease along the list (batch numbers only grow), so when the last entry is
    -- confirmed every entry is: one LINDEX instead of reading and splitting every message.
    local last = rd('list', pl.sk.f, 'LINDEX', -1)
    if not last then
      pl.n, pl.total = 0, 0
    elseif inflight_split(last) <= pl.batch then
      pl.total = redis.call('LLEN', pl.sk.f)
      pl.n = pl.total
    else
      -- later batches follow (a websocket connect pushed to while earlier frames are written): read
      -- from the front only as far as the confirmed ones go, not the whole list at every confirm
      local n, from = 0, 0
      while true do
        local part = redis.call('LRANGE', pl.sk.f, from, from + CONFIRM_SCAN - 1)
        local k = inflight_upto(part, pl.batch)
        n = n + k
        if k < #part or #part < CONFIRM_SCAN then break end
        from = from + CONFIRM_SCAN
      end
      pl.n, pl.total = n, n + 1 -- the last entry is not confirmed: LTRIM below
    end
    if pl.n > 0 and pl.n == pl.total then pl.next = held_next(pl.sk) end
    if pl.next and pl.next.plain then need(K(P).parked, 'hash') end
  end
  local dropped, woken, now = 0, {}, nil
  for _, pl in ipairs(plans) do
    if pl.n == pl.total then
      if pl.n > 0 then redis.call('DEL', pl.sk.f) end
    elseif pl.n > 0 then
      redis.call('LTRIM', pl.sk.f, pl.n, -1)
    end
    dropped = dropped + pl.n
    local nx = pl.next
    if nx and nx.plain then -- its worker drains (bx_drain), as after a publish's wake-up
      redis.call('HDEL', K(P).parked, pl.cid)
      woken[#woken + 1] = { pl.cid, nx.w, nil }
    elseif nx then -- the list was just deleted: push_write creates it
      now = now or now_ms()
      push_write(nx, now)
      queue_reset(pl.sk, true)
      woken[#woken + 1] = { pl.cid, nx.w, nx }
    end
  end
  if #woken > 0 then wake_workers(K(P), woken) end
  return dropped
end

-- Shared session check + touch of subscribe/unsubscribe/publish/touch.
-- Returns k, sk, sess (nil when unknown) after the type checks of the touched keys.
local function session_check(fn, args)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local browser = arg_id(fn, 'browser', args[3], true)
  local max_interval = arg_int(fn, 'max_interval_ms', args[4], 0)
  local ttl = arg_int(fn, 'ttl_ms', args[5], 1)
  local k, sk = K(P), SK(P, cid)
  local sess = load_session(sk)
  if not sess or not browser_ok(sess, browser) then return k, sk, nil end
  need(k.expiry, 'zset')
  return k, sk, sess, cid, max_interval, ttl
end

-- Touch: expiry index = max(current, now + max_interval); safety-net TTL on all keys.
local function touch_write(k, sk, cid, max_interval, ttl)
  local now = now_ms()
  local cur = tonumber(redis.call('ZSCORE', k.expiry, cid) or 0)
  if cur < now + max_interval then redis.call('ZADD', k.expiry, now + max_interval, cid) end
  redis.call('HSET', sk.s, 'ls', now)
  expire_session(sk, ttl)
end

-- keys: P{cid}:s P{cid}:subs  Pch:<channel>...  Pexpiry
-- args: prefix cid browser max_interval_ms ttl_ms channel...
-- returns: {"ok", n_added} | {"unknown"}
local function subscribe(_, args)
  local fn = 'bx_subscribe'
  arg_count(fn, args, 6)
  for i = 6, #args do arg_channel(fn, 'channel ' .. (i - 5), args[i]) end
  local k, sk, sess, cid, max_interval, ttl = session_check(fn, args)
  if not sess then return { 'unknown' } end
  need(sk.subs, 'set')
  for i = 6, #args do need(k.ch(args[i]), 'set') end

  local added = 0
  for i = 6, #args do
    added = added + redis.call('SADD', sk.subs, args[i])
    redis.call('SADD', k.ch(args[i]), cid)
  end
  touch_write(k, sk, cid, max_interval, ttl)
  return { 'ok', added }
end

-- keys: P{cid}:s P{cid}:subs  Pch:<channel>...  Pexpiry
-- args: prefix cid browser max_interval_ms ttl_ms channel...
-- returns: {"ok", missing_index} (0 = all done) | {"unknown"}
local function unsubscribe(_, args)
  local fn = 'bx_unsubscribe'
  arg_count(fn, args, 6)
  for i = 6, #args do arg_channel(fn, 'channel ' .. (i - 5), args[i]) end
  local k, sk, sess, cid, max_interval, ttl = session_check(fn, args)
  if not sess then return { 'unknown' } end
  need(sk.subs, 'set')
  -- Which channels exist is decided in order, as each removal may delete a set.
  local last, missing = #args, 0
  for i = 6, #args do need(k.ch(args[i]), 'set') end

  for i = 6, last do
    if redis.call('EXISTS', k.ch(args[i])) == 0 then
      missing = i - 5
      break
    end
    redis.call('SREM', sk.subs, args[i])
    redis.call('SREM', k.ch(args[i]), cid)
  end
  touch_write(k, sk, cid, max_interval, ttl)
  return { 'ok', missing }
end

-- Fan-out core shared by publish and deliver; the hot loop of the broker. Per recipient
-- it costs one LLEN and one RPUSH (the queue's sentinel makes LLEN tell a live session
-- from a gone one); which recipients are parked comes from one HMGET on Pparked.
-- Probe one recipient's queue: nil when the session is gone, else {q, legacy, len, msgs}
-- (len = messages queued now, without the sentinel; msgs = what this call will append).
local function recipient_probe(P, cid)
  local base = P .. '{' .. cid .. '}:'
  local q = base .. 'q'
  local len = redis.pcall('LLEN', q)
  if type(len) == 'table' then rd('list', q, 'LLEN') end -- raises the error naming the key
  local legacy
  if len == 0 then
    -- No queue: the session is gone, or an older library made it (no sentinel).
    if rd('hash', base .. 's', 'HLEN') == 0 then return nil end
    legacy, len = base .. 's', 1
  end
  return { q = q, legacy = legacy, len = len - 1, msgs = {} }
end

local function recipients_new()
  return { n = 0, id = {}, q = {}, legacy = {}, msgs = {}, len = {} }
end

local function recipient_add(acc, cid, p, msgs)
  local n = acc.n + 1
  acc.n, acc.id[n], acc.q[n], acc.legacy[n], acc.msgs[n], acc.len[n] = n, cid, p.q, p.legacy, msgs, p.len
end

-- Read phase for one recipient of one message: 'gone' (no session), 'full' (max_queue
-- reached), or 'ok' with its queue appended to acc.
local function recipient_read(P, cid, max_queue, acc)
  local p = recipient_probe(P, cid)
  if not p then return 'gone' end
  if max_queue > 0 and p.len >= max_queue then return 'full' end
  recipient_add(acc, cid, p, nil)
  return 'ok'
end

-- Read phase, last step: which accepted recipients hold a parked poll not woken yet.
-- Returns the list of {cid, worker, push} for wake_workers. push (nil: plain wake-up) is set for
-- an HTTP poll whose queue and in-flight list are empty: recipients_write then moves its messages
-- straight to in-flight and the wake-up carries them (one broker call less per delivery).
-- A held websocket connect (session without the ack extension) whose queue is empty gets the same,
-- but stays parked: bayeux-ws writes the messages as frames while the connect stays held, so a
-- push costs no bx_push call (that call and its confirm were 60 % of Redis's time over websocket).
-- Its in-flight list may hold batches being written: the wake-up names the previous batch number
-- too, so the worker can tell that it missed one (then it drains instead, in order).
local function recipients_parked(k, acc)
  local parked = {}
  if acc.n == 0 then return parked end
  need(k.parked, 'hash')
  need(k.expiry, 'zset')
  local count = {} -- a recipient listed twice (private messages to oneself) gets a plain wake-up
  for j = 1, acc.n do count[acc.id[j]] = (count[acc.id[j]] or 0) + 1 end
  local i = 0
  for _, part in ipairs(chunked('HMGET', k.parked, acc.id, 1, acc.n)) do
    for _, w in ipairs(part) do
      i = i + 1
      if w then
        -- two of the session's keys by hand: SK()'s table of five was a tenth of a push (measured)
        local base = k.P .. '{' .. acc.id[i] .. '}:'
        local s = base .. 's'
        local v = rd('hash', s, 'HMGET', 'k', 't', 'xm', 'tl', 'bn', 'ack')
        local push, hold
        local f = base .. 'f'
        if v[1] and not acc.legacy[i] and count[acc.id[i]] == 1 then
          if v[2] == 'websocket' then
            if v[6] ~= '1' then
              local flen = rd('list', f, 'LLEN')
              if flen > 0 then
                -- a batch is being written: these wait in the queue and its bx_confirm pushes them
                -- (under load, one batch per session in flight gathers what arrives meanwhile)
                hold = true
              elseif acc.len[i] == 0 then
                push = { i = i, token = v[1], s = s, f = f, tl = tonumber(v[4]), bn = v[5], ws = true, flen = flen }
              end
            end
          elseif acc.len[i] == 0 and rd('list', f, 'LLEN') == 0 then
            push = { i = i, token = v[1], s = s, f = f, xm = tonumber(v[3]) or 0, tl = tonumber(v[4]), bn = v[5] }
          end
        end
        if not hold then parked[#parked + 1] = { acc.id[i], w, push } end
      end
    end
  end
  return parked
end

-- Write phase: queue the message (or the recipient's own list, acc.msgs) for every accepted
-- recipient in one RPUSH each; the parked ones leave Pparked (they are being woken: one wake-up per poll).
local function recipients_write(k, acc, message, parked)
  local pushed, zadd = {}, {}
  local now = #parked > 0 and now_ms() or 0
  for _, p in ipairs(parked) do
    local push = p[3]
    if push then
      pushed[push.i] = true
      push.msgs = acc.msgs[push.i] or { message }
      local bn = push_write(push, now)
      if not push.ws then -- a held websocket connect stays parked (and in Pparked) for the next publish
        -- unparked, remembering whose poll the messages are for (bx_drain, bx_connect clear pk)
        redis.call('HDEL', push.s, 'w', 'k')
        redis.call('HSET', push.s, 'pk', push.token, 'bn', bn, 'ww', p[2], 'wa', now)
        -- answered now: the session expires maxInterval after this, as after a drain
        if push.xm > 0 then -- 0: parked by an older library version, its expiry stays
          zadd[#zadd + 1] = now + push.xm
          zadd[#zadd + 1] = p[1]
        end
      end
    end
  end
  if #zadd > 0 then chunked('ZADD', k.expiry, zadd, 1, #zadd) end
  for i = 1, acc.n do
    if not pushed[i] then
      local s, msgs = acc.legacy[i], acc.msgs[i]
      if s then redis.call('RPUSH', acc.q[i], SENTINEL) end
      if msgs then
        chunked('RPUSH', acc.q[i], msgs, 1, #msgs)
      else
        redis.call('RPUSH', acc.q[i], message)
      end
      if s then
        local ttl = redis.call('PTTL', s)
        if ttl > 0 then redis.call('PEXPIRE', acc.q[i], ttl) end
      end
    end
  end
  local ids = {}
  for _, p in ipairs(parked) do
    if not (p[3] and p[3].ws) then ids[#ids + 1] = p[1] end
  end
  if #ids > 0 then chunked('HDEL', k.parked, ids, 1, #ids) end
end

-- Replayed publishes: the same message id and the same text among the session's last
-- RECENT_PUBLISHES. nginx replays a POST that a stopping or dying worker never answered
-- (fastcgi_next_upstream non_idempotent); this makes the replay harmless. The text is part of the
-- key because some clients reuse message ids. Read phase: returns the items not seen before and
-- the new value of field pm (nil: unchanged), which the caller writes in its write phase.
local RECENT_PUBLISHES = 32
local function replay_filter(sk, items)
  local recent = redis.call('HGET', sk.s, 'pm') or ''
  local list, seen, fresh = {}, {}, {}
  for w in recent:gmatch('%S+') do
    list[#list + 1] = w
    seen[w] = true
  end
  local changed = false
  for _, it in ipairs(items) do
    if not it.mid then
      fresh[#fresh + 1] = it
    else
      local tag = it.mid .. ':' .. redis.sha1hex(it.message):sub(1, 12)
      if not seen[tag] then
        seen[tag], changed = true, true
        list[#list + 1] = tag
        fresh[#fresh + 1] = it
      end
    end
  end
  if not changed then return fresh, nil end
  local first = math.max(1, #list - RECENT_PUBLISHES + 1)
  return fresh, table.concat(list, ' ', first, #list)
end

-- Publish items in order ({sets = {Pch:<channel>, Pch:<wildcard>...}, message}) from cid (nil:
-- server-side). A recipient gets all of its messages in one RPUSH and at most one wake-up.
-- Runs its read phase, then calls before_writes() (the caller's own writes), then writes.
-- Returns deliveries, dropped (max_queue), workers woken.
local function publish_items(k, cid, btp, max_queue, items, before_writes)
  local members_of, probe, order, stale, stale_seen = {}, {}, {}, {}, {}
  local dropped, deliveries = 0, 0
  for _, it in ipairs(items) do
    local seen = {}
    for _, set in ipairs(it.sets) do
      local members = members_of[set]
      if not members then
        members = rd('set', set, 'SMEMBERS')
        members_of[set] = members
      end
      for _, m in ipairs(members) do
        if btp or m ~= cid then
          local p = probe[m]
          if p == nil then
            p = recipient_probe(k.P, m) or false
            probe[m] = p
            if p then order[#order + 1] = m end
          end
          if not p then
            local key = set .. ' ' .. m
            if not stale_seen[key] then
              stale_seen[key] = true
              stale[#stale + 1] = { set, m }
            end
          elseif not seen[m] then
            seen[m] = true
            if max_queue > 0 and p.len + #p.msgs >= max_queue then
              dropped = dropped + 1
            else
              p.msgs[#p.msgs + 1] = it.message
              deliveries = deliveries + 1
            end
          end
        end
      end
    end
  end
  local acc = recipients_new()
  for _, m in ipairs(order) do
    if #probe[m].msgs > 0 then recipient_add(acc, m, probe[m], probe[m].msgs) end
  end
  local parked = recipients_parked(k, acc)

  -- writes
  before_writes()
  for _, s in ipairs(stale) do redis.call('SREM', s[1], s[2]) end
  recipients_write(k, acc, nil, parked)
  local woken = wake_workers(k, parked)
  stat(k, 'publishes', #items)
  stat(k, 'deliveries', deliveries)
  stat(k, 'dropped', dropped)
  stat(k, 'wakes', woken)
  return deliveries, dropped, woken
end

-- One publish item from args[i]: channel message mid nwild wildcard... (bx_publish_batch);
-- returns the item and the index after it.
local function batch_item(fn, k, args, i, n)
  if i + 3 > #args then fail(fn, 'message ' .. n .. ': channel message mid nwild expected') end
  local channel = arg_channel(fn, 'message ' .. n .. ' channel', args[i])
  local it = { message = arg_nonempty(fn, 'message ' .. n .. ' message', args[i + 1]), sets = { k.ch(channel) } }
  if args[i + 2] ~= '' then it.mid = arg_id(fn, 'message ' .. n .. ' mid', args[i + 2]) end
  local nwild = arg_int(fn, 'message ' .. n .. ' nwild', args[i + 3], 0)
  if i + 3 + nwild > #args then fail(fn, 'message ' .. n .. ': ' .. nwild .. ' wildcards expected') end
  for j = 1, nwild do
    it.sets[#it.sets + 1] = k.ch(arg_channel(fn, 'message ' .. n .. ' wildcard ' .. j, args[i + 3 + j]))
  end
  return it, i + 4 + nwild
end

-- The publisher's side of a publish: unknown session → nil; else the items not replayed,
-- and the publisher's writes (touch, pm) to run first in the write phase.
local function publisher_side(fn, args, items, k)
  local _, sk, sess, cid, max_interval, ttl = session_check(fn, args)
  if not sess then return nil end
  local fresh, pm = replay_filter(sk, items)
  return fresh, cid, function()
    if pm then redis.call('HSET', sk.s, 'pm', pm) end
    touch_write(k, sk, cid, max_interval, ttl)
  end
end

-- keys: P{cid}:s (publisher)  Pch:<channel> Pch:<wildcard>...  P{rcpt}:s P{rcpt}:q  Pexpiry Pstats  Pwake:<W>
-- args: prefix cid browser max_interval_ms ttl_ms channel message broadcast_to_publisher max_queue
--       ['#'<message id>] wildcard...
-- cid "" = a server-side publish (bayeuxctl, services): no publisher check, nothing touched.
-- returns: {"ok", recipients, dropped, workers_woken} | {"ok", 0, 0, 0, "duplicate"} | {"unknown"}
local function publish(_, args)
  local fn = 'bx_publish'
  arg_count(fn, args, 9)
  local server_side = args[2] == ''
  local P = arg_prefix(fn, args[1])
  local k = K(P)
  local it = { sets = { k.ch(arg_channel(fn, 'channel', args[6])) }, message = arg_nonempty(fn, 'message', args[7]) }
  local btp = arg_flag(fn, 'broadcast_to_publisher', args[8])
  local max_queue = arg_int(fn, 'max_queue', args[9])
  local first_wild = 10
  if args[10] and args[10]:sub(1, 1) == '#' then
    it.mid = arg_id(fn, 'message id', args[10]:sub(2))
    first_wild = 11
  end
  for i = first_wild, #args do
    it.sets[#it.sets + 1] = k.ch(arg_channel(fn, 'wildcard ' .. (i - first_wild + 1), args[i]))
  end
  local items, cid, writes = { it }, nil, function() end
  if server_side then
    arg_id(fn, 'browser', args[3], true)
    arg_int(fn, 'max_interval_ms', args[4], 0)
    arg_int(fn, 'ttl_ms', args[5], 0)
    it.mid = nil
  else
    items, cid, writes = publisher_side(fn, args, items, k)
    if not items then return { 'unknown' } end
  end
  need(k.stats, 'hash')
  if #items == 0 then
    writes()
    stat(k, 'replays', 1)
    return { 'ok', 0, 0, 0, 'duplicate' }
  end
  local n, dropped, woken = publish_items(k, cid, btp, max_queue, items, writes)
  return { 'ok', n, dropped, woken }
end

-- keys: as bx_publish, for every message
-- args: prefix cid browser max_interval_ms ttl_ms broadcast_to_publisher max_queue n
--       then n times: channel message mid('' = none) nwild wildcard...
-- returns: {"ok", deliveries, dropped, workers_woken, replays} | {"unknown"}
local function publish_batch(_, args)
  local fn = 'bx_publish_batch'
  arg_count(fn, args, 12)
  local k = K(arg_prefix(fn, args[1]))
  local btp = arg_flag(fn, 'broadcast_to_publisher', args[6])
  local max_queue = arg_int(fn, 'max_queue', args[7])
  local n = arg_int(fn, 'n', args[8], 1)
  local items, i = {}, 9
  for m = 1, n do items[m], i = batch_item(fn, k, args, i, m) end
  if i ~= #args + 1 then fail(fn, 'wrong number of arguments after message ' .. n) end
  local fresh, cid, writes = publisher_side(fn, args, items, k)
  if not fresh then return { 'unknown' } end
  need(k.stats, 'hash')
  local replays = #items - #fresh
  local deliveries, dropped, woken = 0, 0, 0
  if #fresh > 0 then
    deliveries, dropped, woken = publish_items(k, cid, btp, max_queue, fresh, writes)
  else
    writes()
  end
  stat(k, 'replays', replays)
  return { 'ok', deliveries, dropped, woken, replays }
end

-- keys: P{cid}:s P{cid}:q  Pstats  Pwake:<W>
-- args: prefix cid message max_queue ttl_ms
-- returns: 1 queued, 0 unknown session or queue full
local function deliver(_, args)
  local fn = 'bx_deliver'
  arg_count(fn, args, 5, 5)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local message = arg_nonempty(fn, 'message', args[3])
  local max_queue = arg_int(fn, 'max_queue', args[4])
  arg_int(fn, 'ttl_ms', args[5], 1)
  local k = K(P)
  need(k.stats, 'hash')
  local acc = recipients_new()
  local r = recipient_read(P, cid, max_queue, acc)
  if r == 'gone' then return 0 end
  if r == 'full' then
    stat(k, 'dropped', 1)
    return 0
  end
  local parked = recipients_parked(k, acc)
  recipients_write(k, acc, message, parked)
  stat(k, 'wakes', wake_workers(k, parked))
  stat(k, 'deliveries', 1)
  return 1
end

-- keys: P{cid}:s P{cid}:subs P{cid}:q P{cid}:f  Pexpiry
-- args: prefix cid browser max_interval_ms ttl_ms
-- returns: "ok" | "unknown"
local function touch(_, args)
  local fn = 'bx_touch'
  arg_count(fn, args, 5, 5)
  local k, sk, sess, cid, max_interval, ttl = session_check(fn, args)
  if not sess then return 'unknown' end
  touch_write(k, sk, cid, max_interval, ttl)
  return 'ok'
end

-- keys: every key of the session, Pch:<c> for each subscription, Pexpiry, Pbrowser:<b>, Pstats, Pwake:<W>
-- args: prefix cid browser
-- returns: "ok" | "unknown"
local function disconnect(_, args)
  local fn = 'bx_disconnect'
  arg_count(fn, args, 3, 3)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local browser = arg_id(fn, 'browser', args[3], true)
  local k, sk = K(P), SK(P, cid)
  local sess = load_session(sk)
  if not sess or not browser_ok(sess, browser) then return 'unknown' end
  need(k.expiry, 'zset')
  need(k.stats, 'hash')
  removal_write(removal_read(k, sk, cid, sess))
  stat(k, 'disconnects', 1)
  return 'ok'
end

-- keys: Pexpiry, and for each expired session what bx_disconnect touches
-- args: prefix max
-- returns: number of sessions removed
local function sweep(_, args)
  local fn = 'bx_sweep'
  arg_count(fn, args, 2, 2)
  local P = arg_prefix(fn, args[1])
  local max = arg_int(fn, 'max', args[2], 1)
  local k = K(P)
  need(k.stats, 'hash')
  local now = now_ms()
  local ids = rd('zset', k.expiry, 'ZRANGEBYSCORE', '-inf', now, 'LIMIT', 0, max)
  -- Read (and type-check) every victim first: one bad key must not leave a half-swept batch.
  local plans, junk = {}, {}
  for _, cid in ipairs(ids) do
    if #cid <= ID_MAX and not cid:find('[^%w_%-%.]') then
      local sk = SK(P, cid)
      plans[#plans + 1] = removal_read(k, sk, cid, load_session(sk))
    else
      junk[#junk + 1] = cid -- never one of ours (written by hand): drop the index entry only
    end
  end
  for _, plan in ipairs(plans) do removal_write(plan) end
  for _, cid in ipairs(junk) do redis.call('ZREM', k.expiry, cid) end
  local removed = #plans
  stat(k, 'expired', removed)
  requests_expire(k, now, max)
  return removed
end

-- ---------------------------------------------------------------- services
-- Built-in services of shared/services/ (room membership, private chat, users).
-- Keys: Proom:<room> hash member name -> cid; P{cid}:m hash room -> member name;
-- Puser:<user> set of cids. Notices are server-side publishes on /members/<room>.

local ROOM_MAX = 64

local function arg_room(fn, v)
  if #v < 1 or #v > ROOM_MAX or v:find('[^%w_%-%.]') then
    fail(fn, 'room: 1..' .. ROOM_MAX .. ' chars of [A-Za-z0-9_.-] expected, got "' .. v:sub(1, ROOM_MAX) .. '"')
  end
  return v
end

local function arg_name(fn, name, v)
  if #v < 1 or #v > 256 then fail(fn, name .. ': 1..256 bytes expected') end
  return v
end

-- Fan a server-side message out to the subscribers of channel (and its wildcards) after the
-- caller's writes: a recipient whose keys cannot be read (wrong type) is skipped, never an error,
-- so nothing can fail half-way. Returns the number of recipients.
local function fanout_after_writes(k, channel, wild, message, max_queue)
  local sets = { k.ch(channel) }
  for _, w in ipairs(wild) do sets[#sets + 1] = k.ch(w) end
  local seen, acc = {}, recipients_new()
  for _, set in ipairs(sets) do
    local ok, members = pcall(rd, 'set', set, 'SMEMBERS')
    for _, m in ipairs(ok and members or {}) do
      if not seen[m] then
        seen[m] = true
        pcall(recipient_read, k.P, m, max_queue, acc)
      end
    end
  end
  local ok, parked = pcall(recipients_parked, k, acc)
  if not ok then parked = {} end
  recipients_write(k, acc, message, parked)
  stat(k, 'wakes', wake_workers(k, parked))
  stat(k, 'deliveries', acc.n)
  return acc.n
end

-- Last read (who is parked), then the writes: drop stale members of set (if any), queue
-- message for every accepted recipient, wake their workers, count.
local function queue_for(k, acc, message, stale, set)
  local parked = recipients_parked(k, acc)
  if #stale > 0 then chunked('SREM', set, stale, 1, #stale) end
  recipients_write(k, acc, message, parked)
  stat(k, 'wakes', wake_workers(k, parked))
  stat(k, 'deliveries', acc.n)
end

-- A JSON string; cjson escapes '/' as '\/', which is valid but not how channels are written elsewhere.
local function json_str(v)
  return (cjson.encode(v):gsub('\\/', '/'))
end

-- JSON array of strings; cjson would encode an empty table as an object.
local function json_strings(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = json_str(v) end
  return '[' .. table.concat(out, ',') .. ']'
end

-- Publish the member list of room (sorted names) on /members/<room>, as CometD's ChatService.
members_notice = function(k, room)
  local names = redis.call('HKEYS', k.room(room))
  table.sort(names)
  local channel = '/members/' .. room
  -- room is [A-Za-z0-9_.-]: the channel needs no escaping (cjson would escape its slashes)
  local msg = '{"channel":"' .. channel .. '","data":' .. json_strings(names) .. '}'
  return fanout_after_writes(k, channel, { '/members/*', '/members/**', '/**' }, msg, 0)
end

-- Wildcard names that match channel, as shared/channel.c: "<parent>/*", "<parent>/**", then "/**"
-- at each shallower level.
local function channel_wildcards(channel)
  local parent = channel:match('^(.*/)[^/]*$') or '/'
  local out = { parent .. '*', parent .. '**' }
  local p = parent:sub(1, -2)
  while p ~= '' do
    p = p:match('^(.*/)[^/]*$') or ''
    if p ~= '' then out[#out + 1] = p .. '**' end
    p = p:sub(1, -2)
  end
  return out
end

-- {user, presence} on the presence channel (after the caller's writes, like member lists).
presence_notice = function(k, pc, user, what)
  local msg = '{"channel":' .. json_str(pc) .. ',"data":{"user":' .. json_str(user) ..
              ',"presence":"' .. what .. '"}}'
  return fanout_after_writes(k, pc, channel_wildcards(pc), msg, 0)
end

-- The session joins its user's set (Puser:<user>); the first session of a user publishes "joined".
user_add = function(k, user, cid, ttl, pc)
  local first = redis.call('SCARD', k.user(user)) == 0
  redis.call('SADD', k.user(user), cid)
  local cur = redis.call('PTTL', k.user(user))
  if cur < ttl then redis.call('PEXPIRE', k.user(user), ttl) end
  if first and pc ~= '' then presence_notice(k, pc, user, 'joined') end
end

-- keys: P{cid}:s (read only)
-- args: prefix cid browser
-- returns: {"ok", authenticated(0/1), user, roles} | {"unknown"} — the identity the security
-- policy needs for channel authorizers (auth.h).
local function session_auth(_, args)
  local fn = 'bx_session_auth'
  arg_count(fn, args, 3, 3)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local browser = arg_id(fn, 'browser', args[3], true)
  local sk = SK(P, cid)
  local sess = load_session(sk)
  if not sess or not browser_ok(sess, browser) then return { 'unknown' } end
  local v = rd('hash', sk.s, 'HMGET', 'a', 'u', 'r')
  return { 'ok', tonumber(v[1] or 0) or 0, v[2] or '', v[3] or '' }
end

-- keys: P{cid}:s P{cid}:subs P{cid}:q P{cid}:f P{cid}:m  Pexpiry
-- args: prefix cid browser max_interval_ms ttl_ms
-- returns: {"ok", user} | {"unknown"} — bx_touch that also tells the session's user ("" none)
local function service_touch(_, args)
  local fn = 'bx_service_touch'
  arg_count(fn, args, 5, 5)
  local k, sk, sess, cid, max_interval, ttl = session_check(fn, args)
  if not sess then return { 'unknown' } end
  need(sk.m, 'hash')
  local user = rd('hash', sk.s, 'HGET', 'u') or ''
  touch_write(k, sk, cid, max_interval, ttl)
  return { 'ok', user }
end

-- keys: P{cid}:s P{cid}:m  Proom:<room>  Puser:<user>  Pch:/members/... and recipients' queues
-- args: prefix cid room user ttl_ms
-- returns: {"ok", recipients} | {"unknown"}. Records user -> cid in the room (replacing an
-- earlier holder of the name, as CometD's ChatService), sets the session's user when it has
-- none, then publishes the member list on /members/<room>.
local function member_join(_, args)
  local fn = 'bx_member_join'
  arg_count(fn, args, 5, 6)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local room = arg_room(fn, args[3])
  local user = arg_name(fn, 'user', args[4])
  local ttl = arg_int(fn, 'ttl_ms', args[5], 1)
  local pc = args[6] or ''
  if pc ~= '' then arg_channel(fn, 'presence_channel', pc) end
  local k, sk = K(P), SK(P, cid)
  if not load_session(sk) then return { 'unknown' } end
  local old = rd('hash', sk.m, 'HGET', room)
  -- members whose session vanished without a removal (keys expired by their TTL while no worker
  -- swept) are dropped here, so the list never keeps ghosts for long
  local members, stale = rd('hash', k.room(room), 'HGETALL'), {}
  for i = 1, #members, 2 do
    local m = members[i + 1]
    if m ~= cid and (#m > ID_MAX or m:find('[^%w_%-%.]') or redis.call('EXISTS', SK(P, m).s) == 0) then
      stale[#stale + 1] = members[i]
    end
  end
  local cur_user = rd('hash', sk.s, 'HGET', 'u') or ''
  need(k.user(user), 'set')
  need(k.stats, 'hash')
  need(k.parked, 'hash')

  if old and old ~= user and redis.call('HGET', k.room(room), old) == cid then
    redis.call('HDEL', k.room(room), old)
  end
  if #stale > 0 then chunked('HDEL', k.room(room), stale, 1, #stale) end
  redis.call('HSET', k.room(room), user, cid)
  redis.call('HSET', sk.m, room, user)
  redis.call('PEXPIRE', sk.m, ttl)
  if cur_user == '' then
    redis.call('HSET', sk.s, 'u', user, 'pc', pc)
    user_add(k, user, cid, ttl, pc)
  end
  return { 'ok', members_notice(k, room) }
end

-- keys: Proom:<room>  P{peer}:q P{cid}:q  Pwake:<W>
-- args: prefix cid room peers message max_queue
-- peers: member names separated by ","; message: the JSON to queue.
-- returns: {"ok", peers_reached}. The message goes to each named member of room (not the sender
-- itself) and, when at least one was found, to the sender too (CometD's ChatService.privateChat).
local function private(_, args)
  local fn = 'bx_private'
  arg_count(fn, args, 6, 6)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local room = arg_room(fn, args[3])
  local peers = arg_name(fn, 'peers', args[4])
  local message = arg_nonempty(fn, 'message', args[5])
  local max_queue = arg_int(fn, 'max_queue', args[6])
  local k = K(P)
  need(k.stats, 'hash')
  local acc, seen, reached = recipients_new(), {}, 0
  for name in peers:gmatch('[^,]+') do
    local pcid = rd('hash', k.room(room), 'HGET', name)
    if pcid and not seen[pcid] and #pcid <= ID_MAX and not pcid:find('[^%w_%-%.]') then
      seen[pcid] = true
      if pcid == cid then
        reached = reached + 1 -- the sender named itself: it gets its one copy below
      elseif recipient_read(P, pcid, max_queue, acc) == 'ok' then
        reached = reached + 1
      end
    end
  end
  if reached > 0 then recipient_read(P, cid, max_queue, acc) end
  queue_for(k, acc, message, {})
  return { 'ok', reached }
end

-- keys: Puser:<user>  P{cid}:q of each of its sessions  Pwake:<W>
-- args: prefix user message max_queue
-- returns: number of sessions the message was queued for (all sessions of the user, any worker)
local function deliver_user(_, args)
  local fn = 'bx_deliver_user'
  arg_count(fn, args, 4, 4)
  local P = arg_prefix(fn, args[1])
  local user = arg_name(fn, 'user', args[2])
  local message = arg_nonempty(fn, 'message', args[3])
  local max_queue = arg_int(fn, 'max_queue', args[4])
  local k = K(P)
  need(k.stats, 'hash')
  local acc, stale = recipients_new(), {}
  for _, m in ipairs(rd('set', k.user(user), 'SMEMBERS')) do
    if recipient_read(P, m, max_queue, acc) == 'gone' then stale[#stale + 1] = m end
  end
  queue_for(k, acc, message, stale, k.user(user))
  return acc.n
end

-- ---------------------------------------------------------------- external services
-- A call on a configured /service/<name> is appended to the stream Psvc:<channel> (consumer group
-- "bayeux", created here) for any process to answer with bx_ext_answer. Preq:<id> hash {cid,
-- channel, id, deadline} lives until the answer or the deadline; Preqexp (zset id -> deadline)
-- lets bx_sweep send the caller its timeout error.

local EXT_GROUP = 'bayeux'
local EXT_STREAM_MAXLEN = 10000
local ERR_TIMEOUT = '406::timeout'

-- The remote-call reply for a call (JSON text): data (JSON text) when successful, else error.
local function ext_reply(channel, msg_id, data, err)
  local out = '{"channel":' .. json_str(channel)
  if msg_id ~= '' then out = out .. ',"id":' .. json_str(msg_id) end
  if err then
    out = out .. ',"successful":false,"error":' .. json_str(err)
  else
    out = out .. ',"successful":true,"data":' .. data
  end
  return out .. '}'
end

-- Queue reply for cid (wrong-typed keys skipped, never an error: runs after writes).
local function ext_deliver(k, cid, reply)
  local acc = recipients_new()
  if not pcall(recipient_read, k.P, cid, 0, acc) or acc.n == 0 then return 0 end
  local ok, parked = pcall(recipients_parked, k, acc)
  if not ok then parked = {} end
  recipients_write(k, acc, reply, parked)
  stat(k, 'wakes', wake_workers(k, parked))
  stat(k, 'deliveries', acc.n)
  return 1
end

-- keys: Psvc:<channel> (stream)  Preq:<id>  Preqexp  Preqseq
-- args: prefix cid channel msg_id data timeout_ms user
-- returns: the request id. data is the call's JSON data ("null" when none); msg_id "" = none.
local function ext_request(_, args)
  local fn = 'bx_ext_request'
  arg_count(fn, args, 7, 7)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local channel = arg_channel(fn, 'channel', args[3])
  local msg_id = args[4]
  if #msg_id > 256 then fail(fn, 'msg_id: at most 256 bytes') end
  local data = arg_nonempty(fn, 'data', args[5])
  local timeout = arg_int(fn, 'timeout_ms', args[6], 1)
  local user = args[7]
  if #user > 256 then fail(fn, 'user: at most 256 bytes') end
  local k = K(P)
  local stream = k.svc(channel)
  need(stream, 'stream')
  need(k.reqexp, 'zset')
  need(k.reqseq, 'string')
  local deadline = now_ms() + timeout
  local id = tostring(redis.call('INCR', k.reqseq))
  need(k.req(id), 'hash')
  redis.pcall('XGROUP', 'CREATE', stream, EXT_GROUP, '0', 'MKSTREAM') -- BUSYGROUP: exists already
  redis.call('XADD', stream, 'MAXLEN', '~', EXT_STREAM_MAXLEN, '*', 'req', id, 'channel', channel,
             'user', user, 'data', data, 'deadline', deadline)
  redis.call('HSET', k.req(id), 'cid', cid, 'channel', channel, 'id', msg_id, 'deadline', deadline)
  redis.call('PEXPIRE', k.req(id), timeout + 60000)
  redis.call('ZADD', k.reqexp, deadline, id)
  return id
end

-- keys: Preq:<id>  Preqexp  the caller's P{cid}:q  Pwake:<W>
-- args: prefix req_id data error
-- data: JSON text of the result (ignored when error is not ""); error: a Bayeux error string.
-- returns: "ok" (queued for the caller), "late" (deadline passed or answered already: dropped),
-- "gone" (the caller's session is gone).
local function ext_answer(_, args)
  local fn = 'bx_ext_answer'
  arg_count(fn, args, 4, 4)
  local P = arg_prefix(fn, args[1])
  local id = args[2]
  if not id:match('^%d+$') or #id > 20 then fail(fn, 'req_id: a request id expected') end
  local data, err = args[3], args[4]
  if err == '' then
    err = nil
    if data == '' or not pcall(cjson.decode, data) then fail(fn, 'data: JSON text expected') end
  elseif #err > 256 then
    fail(fn, 'error: at most 256 bytes')
  end
  local k = K(P)
  need(k.reqexp, 'zset')
  need(k.stats, 'hash')
  local r = rd('hash', k.req(id), 'HMGET', 'cid', 'channel', 'id', 'deadline')
  if not r[1] or tonumber(r[4]) <= now_ms() then return 'late' end
  redis.call('DEL', k.req(id))
  redis.call('ZREM', k.reqexp, id)
  if ext_deliver(k, r[1], ext_reply(r[2], r[3], data, err)) == 0 then return 'gone' end
  return 'ok'
end

requests_expire = function(k, now, max)
  local ok, ids = pcall(rd, 'zset', k.reqexp, 'ZRANGEBYSCORE', '-inf', now, 'LIMIT', 0, max)
  if not ok then return 0 end
  for _, id in ipairs(ids) do
    local okr, r = pcall(rd, 'hash', k.req(id), 'HMGET', 'cid', 'channel', 'id')
    if okr and r[1] then ext_deliver(k, r[1], ext_reply(r[2], r[3] or '', nil, ERR_TIMEOUT)) end
    redis.call('DEL', k.req(id))
    redis.call('ZREM', k.reqexp, id)
  end
  return #ids
end

-- ---------------------------------------------------------------- auction (the clustered demo)
-- Pauction:<item> hash {amount, bidder}: the highest bid. A higher bid replaces it and is published
-- on /auction/item/<item> to every watcher, whatever worker or pool holds their session.

-- keys: Pauction:<item>  Pch:/auction/... and the watchers' queues
-- args: prefix item amount bidder
-- item: [A-Za-z0-9_.-]{1,64}; amount: a positive integer (cents); bidder: 1..256 bytes.
-- returns: {"ok", recipients} (the new highest bid, published) | {"low", amount, bidder} (current highest)
local function auction_bid(_, args)
  local fn = 'bx_auction_bid'
  arg_count(fn, args, 4, 4)
  local P = arg_prefix(fn, args[1])
  local item = arg_room(fn, args[2])
  local amount = arg_int(fn, 'amount', args[3], 1)
  local bidder = arg_name(fn, 'bidder', args[4])
  local k = K(P)
  local key = P .. 'auction:' .. item
  local cur = rd('hash', key, 'HMGET', 'amount', 'bidder')
  need(k.stats, 'hash')
  if cur[1] and tonumber(cur[1]) >= amount then return { 'low', tonumber(cur[1]), cur[2] or '' } end
  redis.call('HSET', key, 'amount', amount, 'bidder', bidder)
  local channel = '/auction/item/' .. item
  local msg = '{"channel":"' .. channel .. '","data":{"item":"' .. item .. '","amount":' .. amount ..
              ',"bidder":' .. json_str(bidder) .. '}}'
  return { 'ok', fanout_after_writes(k, channel, channel_wildcards(channel), msg, 0) }
end

local STAT_NAMES = { 'handshakes', 'connects', 'publishes', 'deliveries', 'dropped', 'wakes',
                     'disconnects', 'expired' }

-- keys: Pexpiry Pstats
-- args: prefix
-- returns: flat array name, value: sessions, then the counters
local function stats(_, args)
  local fn = 'bx_stats'
  arg_count(fn, args, 1, 1)
  local P = arg_prefix(fn, args[1])
  local k = K(P)
  local out = { 'sessions', rd('zset', k.expiry, 'ZCARD') }
  local v = rd('hash', k.stats, 'HMGET', unpack(STAT_NAMES))
  for i, name in ipairs(STAT_NAMES) do
    out[#out + 1] = name
    out[#out + 1] = tonumber(v[i] or 0)
  end
  return out
end

-- Session summary fields for operators (bx_sessions, bx_session).
local function summary(k, cid, now)
  local sk = SK(k.P, cid)
  local v = rd('hash', sk.s, 'HMGET', 'st', 't', 'b', 'u', 'w', 'ct', 'ls', 'ack', 'bn', 'k')
  local exp = rd('zset', k.expiry, 'ZSCORE', cid)
  local state = v[1] or 'gone'
  if state == 'h' then state = 'handshaken' elseif state == 'c' then state = 'connected' end
  if v[5] then state = 'parked' end
  return {
    'id', cid, 'state', state, 'transport', v[2] or '', 'browser', v[3] or '', 'user', v[4] or '',
    'worker', v[5] or '', 'token', v[10] or '',
    'woken', (v[5] and rd('hash', k.parked, 'HEXISTS', cid) == 0) and 1 or 0,
    'queued', math.max(rd('list', sk.q, 'LLEN') - 1, 0), 'inflight', rd('list', sk.f, 'LLEN'),
    'subscriptions', rd('set', sk.subs, 'SCARD'),
    'created_ms', tonumber(v[6] or 0), 'last_seen_ms', tonumber(v[7] or 0),
    'expires_in_ms', exp and (tonumber(exp) - now) or -1,
    'ttl_ms', redis.call('PTTL', sk.s), 'ack', tonumber(v[8] or 0), 'batch', tonumber(v[9] or 0),
  }
end

-- keys: Pexpiry, P{cid}:s/q/f/subs of each listed session (read only)
-- args: prefix offset count
-- returns: {total, {name, value, ...} per session} ordered by expiry
local function sessions(_, args)
  local fn = 'bx_sessions'
  arg_count(fn, args, 3, 3)
  local P = arg_prefix(fn, args[1])
  local offset = arg_int(fn, 'offset', args[2], 0)
  local count = arg_int(fn, 'count', args[3], 1)
  local k = K(P)
  local ids = rd('zset', k.expiry, 'ZRANGE', offset, offset + count - 1)
  local now = now_ms()
  local out = { rd('zset', k.expiry, 'ZCARD') }
  for _, cid in ipairs(ids) do
    if not cid:find('[^%w_%-%.]') and #cid <= ID_MAX then out[#out + 1] = summary(k, cid, now) end
  end
  return out
end

-- keys: P{cid}:* (read only)
-- args: prefix cid
-- returns: {} when unknown, else {summary pairs..., "channel_list", {...}, "queue_list", {first 100},
--          "inflight_list", {first 100}}
local function session(_, args)
  local fn = 'bx_session'
  arg_count(fn, args, 2, 2)
  local P = arg_prefix(fn, args[1])
  local cid = arg_id(fn, 'cid', args[2])
  local k, sk = K(P), SK(P, cid)
  if redis.call('EXISTS', sk.s) == 0 then return {} end
  local out = summary(k, cid, now_ms())
  out[#out + 1] = 'channel_list'
  out[#out + 1] = rd('set', sk.subs, 'SMEMBERS')
  out[#out + 1] = 'queue_list'
  local queue = rd('list', sk.q, 'LRANGE', 0, 100)
  if queue[1] == SENTINEL then table.remove(queue, 1) else queue[101] = nil end
  out[#out + 1] = queue
  out[#out + 1] = 'inflight_list'
  out[#out + 1] = rd('list', sk.f, 'LRANGE', 0, 99)
  return out
end

local function reg(name, f, ro)
  redis.register_function { function_name = name, callback = f, flags = ro and { 'no-writes' } or {} }
end

reg('bx_version', function() return VERSION end, true)
reg('bx_handshake', handshake)
reg('bx_connect', connect)
reg('bx_connect_batch', connect_batch)
reg('bx_drain', drain)
reg('bx_push', push)
reg('bx_confirm', confirm)
reg('bx_subscribe', subscribe)
reg('bx_unsubscribe', unsubscribe)
reg('bx_publish', publish)
reg('bx_publish_batch', publish_batch)
reg('bx_deliver', deliver)
reg('bx_touch', touch)
reg('bx_disconnect', disconnect)
reg('bx_sweep', sweep)
reg('bx_stats', stats, true)
reg('bx_service_touch', service_touch)
reg('bx_session_auth', session_auth, true)
reg('bx_ext_request', ext_request)
reg('bx_ext_answer', ext_answer)
reg('bx_auction_bid', auction_bid)
reg('bx_member_join', member_join)
reg('bx_private', private)
reg('bx_deliver_user', deliver_user)
reg('bx_sessions', sessions, true)
reg('bx_session', session, true)
