// Flag parsing for the small bench tools (capacity.js, rps.js): --name VALUE, boolean --json,
// numeric options checked against a range; any mistake exits 2 with a one-line reason.
'use strict';

// defaults: { name: default }; numeric: { name: [min, max] }. Returns the options with numbers.
function parseFlags(prog, argv, defaults, numeric) {
  const bad = (m) => { process.stderr.write(`${prog}: ${m}\n`); process.exit(2); };
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)$/.exec(argv[i]);
    if (!m || !(m[1] in o)) bad(`unknown argument '${argv[i]}'`);
    if (typeof o[m[1]] === 'boolean') { o[m[1]] = true; continue; }
    if (argv[i + 1] === undefined) bad(`--${m[1]} needs a value`);
    o[m[1]] = argv[++i];
  }
  for (const [k, [min, max]] of Object.entries(numeric)) {
    const n = Number(o[k]);
    if (String(o[k]).trim() === '' || !Number.isFinite(n) || n < min || n > max) bad(`--${k} must be a number within ${min}..${max}, got '${o[k]}'`);
    o[k] = n;
  }
  let url;
  try { url = new URL(o.url); } catch (e) { bad(`--url '${o.url}' is not a URL`); }
  if (url.protocol !== 'http:') bad(`--url must be http:// (long-polling), got '${url.protocol}'`);
  o.parsedUrl = url;
  o.pidList = (s) => String(s).split(',').filter(Boolean).map((p) => { if (!/^\d+$/.test(p)) bad(`bad pid '${p}'`); return Number(p); });
  return o;
}

module.exports = { parseFlags };
