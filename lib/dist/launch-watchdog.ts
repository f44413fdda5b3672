/**
 * The orphan watchdog of `llm-kernels launch`: preloaded into every rank with `node --import <this file>`.
 *
 * The launcher gives each rank one extra pipe on fd 3 and sets `LLM_KERNELS_LAUNCHER_FD=3`. The launcher never
 * writes to it and keeps its end open until the rank has exited, so the rank sees end-of-file on fd 3 only when the
 * launcher is gone, even if it was killed with SIGKILL and had no chance to stop its ranks. The rank then kills
 * itself with SIGKILL: no orphaned ranks hold a port, a shared-memory segment or a GPU.
 *
 * - Without `LLM_KERNELS_LAUNCHER_FD` (a script run directly with this module preloaded) it does nothing.
 * - It only reads fd 3; stdin, stdout and stderr are untouched. The socket is `unref()`ed, so it never keeps the
 *   rank alive: a script whose work is done exits as it would without the watchdog.
 * - It removes `LLM_KERNELS_LAUNCHER_FD` from `process.env`, so processes the script starts (a nested launch, a
 *   child node) do not take their own fd 3 for a launcher pipe. Worker threads (which inherit `--import`) skip it.
 * - Limitation: the check runs on the main thread's event loop; a rank stuck in synchronous code notices the
 *   launcher's death when it next returns to the event loop.
 *
 * It has no exports and imports only Node built-ins (it is loaded before the script, into every rank).
 * @packageDocumentation
 */
import { Socket } from 'node:net';
import { isMainThread } from 'node:worker_threads';

/** Same name as LAUNCHER_FD_ENV in launch.ts (not imported: this module must stay free of side imports). */
const FD_ENV = 'LLM_KERNELS_LAUNCHER_FD';

function installWatchdog(): void {
  if (!isMainThread) return;
  const raw = process.env[FD_ENV];
  if (raw === undefined) return;
  delete process.env[FD_ENV];
  const fd = Number(raw);
  if (!/^\d+$/.test(raw) || fd < 3) return;
  let sock: Socket;
  try {
    sock = new Socket({ fd, readable: true, writable: false });
  } catch {
    return; // fd is not open or not a pipe: not started by the launcher after all
  }
  const launcherGone = (): void => {
    process.kill(process.pid, 'SIGKILL');
  };
  sock.on('data', () => {}); // the launcher writes nothing; keep the stream flowing so that 'end' is seen
  sock.on('end', launcherGone);
  sock.on('close', launcherGone);
  sock.on('error', launcherGone);
  sock.unref();
}

installWatchdog();
