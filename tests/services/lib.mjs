// Helpers of the services suite: tokens (HS256 with the suite's secret, RS256 with its key pair).
import crypto from 'node:crypto';
import fs from 'node:fs';

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

// A JWT over claims; alg HS256 (key: a secret string or Buffer), RS256 (key: PEM private key) or none.
export function jwt(claims, { alg = 'HS256', key = process.env.BX_SVC_SECRET } = {}) {
  const head = `${b64({ alg, typ: 'JWT' })}.${b64(claims)}`;
  if (alg === 'none') return `${head}.`;
  const sig = alg === 'HS256' ? crypto.createHmac('sha256', key).update(head).digest()
    : crypto.sign('sha256', Buffer.from(head), key);
  return `${head}.${sig.toString('base64url')}`;
}

export const rsaPrivate = () => fs.readFileSync(`${process.env.BX_SVC_DIR}/rsa.pem`, 'utf8');
export const rsaPublic = () => fs.readFileSync(`${process.env.BX_SVC_DIR}/rsa.pub.pem`, 'utf8');
export const inAMinute = () => Math.floor(Date.now() / 1000) + 60;

// Worker log lines (both workers) matching re.
export function workerLog(re) {
  const dir = process.env.BX_SVC_DIR;
  return fs.readdirSync(dir).filter((f) => /^worker\d+\.log$/.test(f))
    .flatMap((f) => fs.readFileSync(`${dir}/${f}`, 'utf8').split('\n')).filter((l) => re.test(l));
}
