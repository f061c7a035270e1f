import type { SpillFile, SpillStore } from '../src/core/quant/row-cache';

/** FileSystemSyncAccessHandle as Chromium's dedicated workers have it (not in the DOM typings of this TypeScript). */
interface SyncHandle {
  read(buffer: Uint8Array, options: { at: number }): number;
  write(buffer: Uint8Array, options: { at: number }): number;
  close(): void;
}

/** Folder of the origin-private file system that holds spilled caches; emptied at every run's start. */
const SPILL_DIR = 'spill';

/**
 * Spilled calibration caches in the origin-private file system, through synchronous access
 * handles: the reconstruction loop reads a batch of rows at a time without awaiting. Only a
 * dedicated worker may open these handles, which is where runs happen.
 */
export async function opfsSpillStore(): Promise<SpillStore> {
  const root = await navigator.storage.getDirectory();
  // what an interrupted run left behind is of no use: caches are rebuilt from the images
  await root.removeEntry(SPILL_DIR, { recursive: true }).catch(() => undefined);
  const dir = await root.getDirectoryHandle(SPILL_DIR, { create: true });
  return {
    async open(name: string): Promise<SpillFile> {
      const file = await dir.getFileHandle(name, { create: true });
      const handle = (await (file as unknown as { createSyncAccessHandle(): Promise<SyncHandle> }).createSyncAccessHandle());
      return {
        write: (offset, bytes) => {
          for (let done = 0; done < bytes.length; ) done += handle.write(bytes.subarray(done), { at: offset + done });
        },
        read: (offset, into) => {
          for (let done = 0; done < into.length; ) {
            const n = handle.read(into.subarray(done), { at: offset + done });
            if (n === 0) throw new Error(`spilled cache ${name}: short read at ${offset + done}`);
            done += n;
          }
        },
        close: () => {
          handle.close();
          void dir.removeEntry(name).catch(() => undefined);
        },
      };
    },
  };
}
