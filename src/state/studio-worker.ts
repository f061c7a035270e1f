import * as Comlink from 'comlink';
import type { StudioWorkerApi } from '../common/protocol';

let current: { worker: Worker; remote: Comlink.Remote<StudioWorkerApi> } | null = null;
const lostListeners = new Set<(reason: string) => void>();

/**
 * The one studio worker of the page, started on first use, and started afresh after the previous
 * one died.
 *
 * A dead worker answers nothing, so every call in flight would wait forever. Its death is seen
 * through a Web Lock the worker holds for its whole life: the browser grants the page's request
 * for the same lock only once the worker is gone, whether it crashed, ran out of memory or was
 * closed, and whether or not it was busy. (A heartbeat could not tell a dead worker from one busy
 * in a long synchronous kernel.) An uncaught error counts too: the worker's state is then unknown.
 */
export function studioWorker(): Comlink.Remote<StudioWorkerApi> {
  if (current) return current.remote;
  const id = crypto.randomUUID();
  const worker = new Worker(new URL('../../workers/studio.worker.ts', import.meta.url), { type: 'module', name: 'lowbit-studio' });
  const remote = Comlink.wrap<StudioWorkerApi>(worker);
  current = { worker, remote };
  const lost = (reason: string): void => {
    if (current?.worker !== worker) return;
    current = null;
    worker.terminate();
    for (const listener of [...lostListeners]) listener(reason);
  };
  worker.addEventListener('error', (e) => {
    // reported through the listeners (and the page's error state), not as a console error
    e.preventDefault();
    lost(`the studio’s worker failed: ${e.message || 'an error it could not report (often a failed module load or memory exhaustion)'}`);
  });
  const lock = `lowbit-studio-worker-${id}`;
  void remote.holdLifeLock(lock).then(() => navigator.locks.request(lock, () => lost('the studio’s worker stopped: it crashed, ran out of memory or was closed')));
  return remote;
}

/** Calls `listener` with the reason when the worker dies; returns the function that stops listening. */
export function onWorkerLost(listener: (reason: string) => void): () => void {
  lostListeners.add(listener);
  return () => lostListeners.delete(listener);
}

export class WorkerLostError extends Error {
  override name = 'WorkerLostError';
}

/** `call`, or a WorkerLostError if the worker dies first: a call to a dead worker never settles by itself. */
export function unlessWorkerLost<T>(call: Promise<T>): Promise<T> {
  let stop = (): void => {};
  const lost = new Promise<never>((_, reject) => {
    stop = onWorkerLost((reason) => reject(new WorkerLostError(reason)));
  });
  return Promise.race([call, lost]).finally(stop);
}
