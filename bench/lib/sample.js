// Server-side figures for one run: CPU and RSS of the server's processes (/proc),
// and Redis command counts (INFO commandstats through redis-cli, with a timeout).
'use strict';
const fs = require('fs');
const { execFileSync } = require('child_process');

const CLK_TCK = 100;   // Linux USER_HZ; /proc/<pid>/stat counts in these ticks

// { pid: {cpuTicks, rssKb} } for the pids that still exist; missing pids are listed.
function procSnapshot(pids) {
  const out = { procs: {}, missing: [] };
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');   // field 3 onwards
      const cpuTicks = Number(f[11]) + Number(f[12]);                // utime + stime
      const rssKb = Number(f[21]) * 4;                               // rss pages (4 KiB)
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      out.procs[pid] = { cpuTicks, rssKb, name };
    } catch (e) {
      out.missing.push(pid);
    }
  }
  return out;
}

function rssKb(snap) { return Object.values(snap.procs).reduce((a, p) => a + p.rssKb, 0); }

// CPU used between two snapshots, in % of one core, over wallSec.
function cpuPercent(a, b, wallSec) {
  let ticks = 0;
  for (const pid of Object.keys(b.procs)) if (a.procs[pid]) ticks += b.procs[pid].cpuTicks - a.procs[pid].cpuTicks;
  return wallSec > 0 ? (100 * ticks / CLK_TCK) / wallSec : 0;
}

// CPU by process name (nginx, bayeux-fcgi, redis-server, node), % of one core over wallSec.
function cpuByName(a, b, wallSec) {
  const out = {};
  for (const [pid, p] of Object.entries(b.procs)) {
    if (!a.procs[pid] || wallSec <= 0) continue;
    out[p.name] = (out[p.name] || 0) + Math.round((100 * (p.cpuTicks - a.procs[pid].cpuTicks) / CLK_TCK) / wallSec);
  }
  return out;
}

// { cmd: calls } or null when Redis does not answer within 3 s.
function redisCommandStats(host, port) {
  if (!port) return null;
  try {
    const txt = execFileSync('redis-cli', ['-h', host, '-p', String(port), 'INFO', 'commandstats'],
      { timeout: 3000, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const out = {};
    for (const line of txt.split(/\r?\n/)) {
      const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
      if (m) out[m[1]] = Number(m[2]);
    }
    return out;
  } catch (e) {
    return null;
  }
}

// Delta of two commandstats snapshots, without our own INFO calls.
function commandDelta(a, b) {
  if (!a || !b) return null;
  const d = {};
  for (const [k, v] of Object.entries(b)) {
    if (k === 'info') continue;
    const n = v - (a[k] || 0);
    if (n > 0) d[k] = n;
  }
  return d;
}

module.exports = { procSnapshot, rssKb, cpuPercent, cpuByName, redisCommandStats, commandDelta };
