/**
 * Whether a process still runs, for tests that check nothing outlives a shutdown. A zombie (exited,
 * not yet reaped by its parent) runs nothing, so it counts as gone.
 */
import { readFileSync } from 'node:fs';

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    // No /proc (not Linux): kill(0) succeeding is all we can know. On Linux the entry just vanished.
    return process.platform !== 'linux';
  }
}
