import * as Comlink from 'comlink';
import type { StudioWorkerApi } from '../common/protocol';

let remote: Comlink.Remote<StudioWorkerApi> | null = null;

/** The one studio worker of the page, started on first use. */
export function studioWorker(): Comlink.Remote<StudioWorkerApi> {
  if (!remote) {
    const worker = new Worker(new URL('../../workers/studio.worker.ts', import.meta.url), { type: 'module', name: 'lowbit-studio' });
    remote = Comlink.wrap<StudioWorkerApi>(worker);
  }
  return remote;
}
