/**
 * A zip archive of images, read without dependencies (Node, worker and tests alike): the central
 * directory (APPNOTE.TXT 4.3.12–4.3.16), stored and deflated entries, inflated by the platform's
 * DecompressionStream('deflate-raw'). Entries keep their paths, so class folders inside the
 * archive label images as folders on disk do. Refused with a DatasetError naming the reason:
 * ZIP64, archives split over several disks, encrypted entries, other compression methods, and a
 * CRC that does not match (a corrupt entry would otherwise be an image of wrong pixels).
 */
import { DatasetError, type ImageFile } from './image-set';
import { crc32 } from './png';

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const ZIP64_LOCATOR = 0x07064b50;
/** Deflate's largest possible expansion (as for PNG), with a margin: a larger declared size is a lie or a bomb. */
const MAX_INFLATE_RATIO = 1040;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

/**
 * The files of the archive `name` whose paths `keep` accepts (folders and other files are not
 * inflated), in the central directory's order, with forward-slash paths.
 */
export async function readZip(bytes: Uint8Array, name: string, keep: (path: string) => boolean = () => true): Promise<ImageFile[]> {
  const fail = (why: string): never => {
    throw new DatasetError(`${name}: ${why}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (p: number): number => view.getUint16(p, true);
  const u32 = (p: number): number => view.getUint32(p, true);

  // the end-of-central-directory record: the last 22 bytes, or further back by its comment's length (≤ 65535)
  let eocd = -1;
  for (let p = bytes.length - 22; p >= Math.max(0, bytes.length - 22 - 0xffff); p--) {
    if (u32(p) === EOCD && p + 22 + u16(p + 20) === bytes.length) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) fail('not a zip archive, or a truncated one (no end of central directory)');
  if (eocd >= 20 && u32(eocd - 20) === ZIP64_LOCATOR) fail('ZIP64 archives are not supported (re-zip it below 4 GB and 65,535 files)');
  if (u16(eocd + 4) !== 0 || u16(eocd + 6) !== 0) fail('archives split over several files are not supported');
  const count = u16(eocd + 10);
  const cdSize = u32(eocd + 12);
  const cdOffset = u32(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) fail('ZIP64 archives are not supported (re-zip it below 4 GB and 65,535 files)');
  if (cdOffset + cdSize > eocd) fail('the central directory lies outside the archive (corrupt or truncated)');

  const entries: { path: string; method: number; crc: number; compressed: number; size: number; local: number }[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > eocd || u32(p) !== CENTRAL) fail(`central directory entry ${i + 1} is corrupt`);
    const flags = u16(p + 8);
    const method = u16(p + 10);
    const nameLen = u16(p + 28);
    const end = p + 46 + nameLen + u16(p + 30) + u16(p + 32);
    if (end > eocd) fail(`central directory entry ${i + 1} is corrupt`);
    // names are UTF-8 when flag bit 11 says so; the rest are almost always ASCII, which UTF-8 reads the same
    const path = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen)).replace(/\\/g, '/');
    const entry = { path, method, crc: u32(p + 16), compressed: u32(p + 20), size: u32(p + 24), local: u32(p + 42) };
    p = end;
    if (path.endsWith('/') || !keep(path)) continue;
    if (flags & 1) fail(`${path} is encrypted; encrypted archives are not supported`);
    if (method !== 0 && method !== 8) fail(`${path} uses compression method ${method}; only stored and deflated entries are supported`);
    if (entry.compressed === 0xffffffff || entry.size === 0xffffffff || entry.local === 0xffffffff) fail('ZIP64 archives are not supported (re-zip it below 4 GB and 65,535 files)');
    entries.push(entry);
  }

  return Promise.all(
    entries.map(async (e) => {
      if (e.local + 30 > bytes.length || u32(e.local) !== LOCAL) fail(`${e.path}: its local header is missing (corrupt archive)`);
      const start = e.local + 30 + u16(e.local + 26) + u16(e.local + 28);
      if (start + e.compressed > bytes.length) fail(`${e.path} is truncated`);
      const raw = bytes.subarray(start, start + e.compressed);
      let data: Uint8Array;
      if (e.method === 0) {
        if (e.compressed !== e.size) fail(`${e.path}: a stored entry whose sizes differ (corrupt archive)`);
        data = raw;
      } else {
        if (e.size > e.compressed * MAX_INFLATE_RATIO + 1024) fail(`${e.path}: its size (${e.size} bytes) is more than ${e.compressed} compressed bytes can hold`);
        data = await inflateRaw(raw, e.size, () => fail(`${e.path}: corrupt compressed data`));
      }
      if (crc32(data, 0, data.length) !== e.crc) fail(`${e.path}: CRC mismatch (corrupt archive)`);
      return { path: e.path, bytes: data };
    }),
  );
}

/** Inflates exactly `size` bytes, or calls `corrupt` (which throws) for a stream that fails or is of another length. */
async function inflateRaw(input: Uint8Array, size: number, corrupt: () => never): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  const stream = new DecompressionStream('deflate-raw');
  const writer = stream.writable.getWriter();
  // write and read concurrently: awaiting the write first can deadlock on backpressure
  const written = writer.write(input as Uint8Array<ArrayBuffer>).then(() => writer.close());
  written.catch(() => {});
  const reader = stream.readable.getReader();
  let length = 0;
  let ok = true;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (length + value.length > size) {
        void reader.cancel().catch(() => {});
        ok = false;
        break;
      }
      out.set(value, length);
      length += value.length;
    }
    if (ok) await written;
  } catch {
    ok = false;
  }
  if (!ok || length !== size) corrupt();
  return out;
}
