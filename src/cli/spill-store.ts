import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SpillFile, SpillStore } from '../core/quant/row-cache';

/**
 * Spilled calibration caches in a temporary directory (or `dir`): one file per cache, removed when
 * the cache is closed, and the directory when the process exits.
 */
export function fileSpillStore(dir?: string): SpillStore {
  let root: string | null = null;
  return {
    open(name: string): Promise<SpillFile> {
      if (!root) {
        root = mkdtempSync(join(dir ?? tmpdir(), 'lowbit-cache-'));
        const made = root;
        process.once('exit', () => rmSync(made, { recursive: true, force: true }));
      }
      const path = join(root, name);
      const fd = openSync(path, 'w+');
      return Promise.resolve({
        write: (offset, bytes) => {
          for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, offset + done);
        },
        read: (offset, into) => {
          for (let done = 0; done < into.length; ) {
            const n = readSync(fd, into, done, into.length - done, offset + done);
            if (n === 0) throw new Error(`${path}: short read at ${offset + done}`);
            done += n;
          }
        },
        close: () => {
          closeSync(fd);
          rmSync(path, { force: true });
        },
      });
    },
  };
}
