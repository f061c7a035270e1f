import type { CheckpointStore } from '../src/core/checkpoint';

/**
 * Checkpoints in IndexedDB, one record per model name: a reload of the page (or a crash of the
 * tab) loses nothing a finished block produced, and running the same plan again resumes.
 */
const DB = 'lowbit-studio';
const STORE = 'checkpoints';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB could not be opened'));
  });
}

function request<T>(mode: IDBTransactionMode, work: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return open().then(
    (db) =>
      new Promise<T>((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const req = work(tx.objectStore(STORE));
        tx.oncomplete = () => {
          db.close();
          resolve(req.result);
        };
        tx.onerror = () => {
          db.close();
          reject(tx.error ?? new Error('IndexedDB transaction failed'));
        };
      }),
  );
}

export function indexedDbCheckpoints(modelName: string): CheckpointStore {
  return {
    load: async () => ((await request('readonly', (s) => s.get(modelName))) as string | undefined) ?? null,
    save: async (text) => void (await request('readwrite', (s) => s.put(text, modelName))),
  };
}
