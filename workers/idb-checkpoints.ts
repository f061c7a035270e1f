import type { CheckpointStore } from '../src/core/checkpoint';
import { idbRequest } from './idb';

/**
 * Checkpoints in IndexedDB, one record per model name: a reload of the page (or a crash of the
 * tab) loses nothing a finished block produced, and running the same plan again resumes.
 */
export function indexedDbCheckpoints(modelName: string): CheckpointStore {
  return {
    load: async () => ((await idbRequest('checkpoints', 'readonly', (s) => s.get(modelName))) as string | undefined) ?? null,
    save: async (text) => void (await idbRequest('checkpoints', 'readwrite', (s) => s.put(text, modelName))),
  };
}
