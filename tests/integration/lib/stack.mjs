// Control of the private stack started by tests/integration/run.sh (scripts/stack.sh commands).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, readdirSync } from 'node:fs';

const run = promisify(execFile);
export const DIR = process.env.BX_STACK_DIR;
const ROOT = process.env.BX_ROOT || process.cwd();
export const WORKERS = Number(process.env.BX_STACK_WORKERS || 2);

export async function stack(...args) {
  if (!DIR) throw new Error('BX_STACK_DIR is not set: run the suite through tests/integration/run.sh');
  const { stdout } = await run('bash', [`${ROOT}/scripts/stack.sh`, ...args.map(String)], { maxBuffer: 1 << 20 });
  return stdout;
}
export const workerPid = async (i) => Number((await stack('worker-pid', DIR, i)).trim());
// Sends the signal and resolves once the worker has exited.
export const stopWorker = (i, sig = 'TERM') => stack('worker-stop', DIR, i, sig);
// Starts it and waits until the web server uses it again (nginx skips a failed worker for
// BX_STACK_FAIL_TIMEOUT seconds).
export const startWorker = async (i) => {
  await stack('worker-start', DIR, i);
  await new Promise((r) => setTimeout(r, 1000 * Number(process.env.BX_STACK_FAIL_TIMEOUT || 5) + 300));
};
export const stopRedis = () => stack('redis-stop', DIR);
export const startRedis = () => stack('redis-start', DIR);

// Lines of every worker log (DIR/worker*.log) that match re: to check what a request logged.
export function workerLogLines(re) {
  return readdirSync(DIR).filter((f) => /^worker\d+\.log$/.test(f))
    .flatMap((f) => readFileSync(`${DIR}/${f}`, 'utf8').split('\n')).filter((l) => re.test(l));
}
