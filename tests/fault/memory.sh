#!/usr/bin/env bash
# tests/fault/memory.sh — Redis memory per session and per queued message, measured on real sessions
# made through a worker (private redis + 1 worker + nginx on free ports, stopped at the end). Not part
# of make test: the figures in docs/operations.md §2 come from it.   BUILD=build bash tests/fault/memory.sh
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD=${BUILD:-build}
source scripts/stack.sh
d=$(mktemp -d /tmp/bx-memory.XXXXXX)
trap 'bx_stack_stop "$d"; rm -rf "$d"' EXIT
rp=$(bx_free_port); np=$(bx_free_port)
printf 'redisPort = %s\nredisPrefix = bayeux:\nmaxInterval = 600000\n' "$rp" > $d/bayeux.conf
export BX_STACK_BIN=$PWD/$BUILD/bin/bayeux-fcgi BX_STACK_CONF=$d/bayeux.conf BX_STACK_WORKERS=1 BX_STACK_REDIS_PORT=$rp
bx_stack_init $d
bx_stack_redis_start $d && bx_stack_workers_start $d && bx_stack_nginx_start $d 127.0.0.1 $np
BX_URL=http://127.0.0.1:$np BX_REDIS_PORT=$rp node --input-type=module -e '
import { Session } from "'"$PWD"'/tests/fault/lib/driver.mjs";
import { execFileSync } from "node:child_process";
const R = (...a) => execFileSync("redis-cli", ["-p", process.env.BX_REDIS_PORT, ...a.map(String)]).toString().trim();
const used = () => Number(/used_memory:(\d+)/.exec(R("INFO", "memory"))[1]);
const base = process.env.BX_URL;
const mu = (k) => Number(R("MEMORY", "USAGE", k, "SAMPLES", "0") || 0);
// one session, ack on, 10 subscriptions, then 100 queued 50-byte messages
const s = await new Session(base, "m", { ack: true }).open();
const cid = s.clientId, b = s.jar.get("BAYEUX_BROWSER");
const keys = () => [`bayeux:{${cid}}:s`, `bayeux:{${cid}}:subs`, `bayeux:{${cid}}:q`, `bayeux:{${cid}}:f`, `bayeux:browser:${b}`];
const show = (label) => console.log(label, keys().map((k) => `${k.replace(cid, "X").replace(b, "B")}=${mu(k)}`).join(" "));
show("bare session:");
for (let i = 0; i < 10; i++) await s.call({ channel: "/meta/subscribe", subscription: `/chat/room${i}` });
show("10 subscriptions:");
const pub = await new Session(base, "p", { ack: false }).open();
const payload = "x".repeat(50);
const q0 = mu(`bayeux:{${cid}}:q`);
for (let i = 0; i < 100; i++) await pub.call({ channel: "/chat/room0", data: { seq: i, text: payload } });
const q1 = mu(`bayeux:{${cid}}:q`);
show("100 queued:");
console.log(`per queued message (50-byte text, JSON ~${JSON.stringify({channel:"/chat/room0",data:{seq:1,text:payload}}).length} bytes): ${((q1 - q0) / 100).toFixed(1)} bytes`);
// bulk: 2000 sessions with 10 subscriptions each, used_memory delta
const m0 = used();
const N = 2000;
let next = 0;
await Promise.all(Array.from({ length: 16 }, async () => {
  while (next < N) { next++; const x = await new Session(base, "bulk", { ack: true }).open();
    await x.call({ channel: "/meta/subscribe", subscription: Array.from({ length: 10 }, (_, i) => `/chat/room${i}`) }); }
}));
const m1 = used();
console.log(`used_memory per session (ack, 10 subscriptions, channel sets included): ${((m1 - m0) / N).toFixed(0)} bytes over ${N} sessions`);
const m2 = used();
for (let i = 0; i < 100; i++) await pub.call({ channel: "/chat/room1", data: { seq: i, text: payload } });
const m3 = used();
console.log(`used_memory per queued delivery (publish to a room of ${N + 1} sessions): ${((m3 - m2) / (100 * (N + 1))).toFixed(1)} bytes`);
'
