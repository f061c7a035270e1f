/**
 * The studio's IndexedDB: checkpoints of block runs (one record per model name) and the history
 * of finished runs. Small, promise-shaped helpers; each call opens, works and closes.
 */
const DB = 'lowbit-studio';
export type StoreName = 'checkpoints' | 'runs';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 2);
    req.onupgradeneeded = () => {
      for (const name of ['checkpoints', 'runs'] as const) if (!req.result.objectStoreNames.contains(name)) req.result.createObjectStore(name, name === 'runs' ? { autoIncrement: true } : undefined);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB could not be opened'));
  });
}

export function idbRequest<T>(store: StoreName, mode: IDBTransactionMode, work: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return open().then(
    (db) =>
      new Promise<T>((resolve, reject) => {
        const tx = db.transaction(store, mode);
        const req = work(tx.objectStore(store));
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
