-- wrk script for bench/rps.js: every request POSTs one Bayeux batch. Thread n takes its body and
-- cookie from WRK_BODY_<n> / WRK_COOKIE_<n> (one session per thread), else WRK_BODY. A reply that
-- is not HTTP 200 with "successful":true counts as a failure. done() prints one JSON line.
local threads, counter = {}, 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.body = os.getenv("WRK_BODY_" .. id) or os.getenv("WRK_BODY")
  wrk.headers["Content-Type"] = "application/json;charset=UTF-8"
  local cookie = os.getenv("WRK_COOKIE_" .. id)
  if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end
  fails = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"successful":%s*true') then fails = fails + 1 end
end

function done(summary, latency, requests)
  local f = 0
  for _, t in ipairs(threads) do f = f + (t:get("fails") or 0) end
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"fails":%d,"connectErrors":%d,"readErrors":%d,' ..
    '"writeErrors":%d,"timeouts":%d,"p50Us":%d,"p99Us":%d}\n', summary.requests, summary.duration, f,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99)))
end
