/**
 * Calibration caches (a block's inputs and float targets over every calibration image) as rows,
 * one row per image, stored in one of three ways:
 * - 'float32' in memory: exact, 4 bytes a value;
 * - 'float16' in memory: half the memory; the rounding (relative error ≤ 2⁻¹¹) is far below the
 *   quantization noise the methods fight (a 8-bit step is 2⁻⁸ of the range);
 * - 'spill': float16 in a file (a temporary file under Node, the origin-private file system in a
 *   browser worker), read back a batch at a time, so caches larger than memory still work.
 * The reconstruction loop only ever asks for a batch of rows (gather) or a contiguous run of rows
 * (metrics), which every storage serves the same way, so the methods do not know which one ran.
 */

export type CacheStorage = 'float32' | 'float16' | 'spill';

export const CACHE_STORAGES: readonly CacheStorage[] = ['float32', 'float16', 'spill'];

/** Bytes of memory a cached value takes (a spilled one takes disk, not memory). */
export const BYTES_IN_MEMORY: Readonly<Record<CacheStorage, number>> = { float32: 4, float16: 2, spill: 0 };

/** A file that holds spilled cache rows: synchronous positional reads and writes, removed on close. */
export interface SpillFile {
  write(offset: number, bytes: Uint8Array): void;
  read(offset: number, into: Uint8Array): void;
  close(): void;
}

/** Where a run may spill its caches: a temporary directory (CLI) or the origin-private file system (studio worker). */
export interface SpillStore {
  open(name: string): Promise<SpillFile>;
}

export interface RowCache {
  /** [rows, ...one row's shape] */
  readonly shape: readonly number[];
  readonly storage: CacheStorage;
  /** Values in one row. */
  readonly rowSize: number;
  /** Writes rows start.. from `data` (whole rows). */
  write(start: number, data: Float32Array): void;
  /** Rows `idx`, in that order, into `into` (idx.length · rowSize values). */
  gather(idx: readonly number[], into: Float32Array): Float32Array;
  /** Rows start..end, into `into` when given. */
  rows(start: number, end: number, into?: Float32Array): Float32Array;
  /** Frees the memory or removes the file. */
  close(): void;
}

// ---- float16 ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of `x`, rounded to nearest, ties to even (overflow → ±∞, NaN kept). */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): shift the implicit-one mantissa right, rounding to nearest even
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && (half & 1)) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // a carry out of the mantissa rolls into the exponent, which is the right answer (up to ∞)
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1)) ? 1 : 0));
}

/** binary16 bits → float, through a table: decoding runs once per cached value per batch. */
const FROM_HALF = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 0x1f ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export function fromHalf(h: number): number {
  return FROM_HALF[h & 0xffff]!;
}

function encodeHalf(src: Float32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = toHalf(src[i]!);
}

function decodeHalf(src: Uint16Array, dst: Float32Array, at: number): void {
  const t = FROM_HALF;
  for (let i = 0; i < src.length; i++) dst[at + i] = t[src[i]!]!;
}

// ---- the three storages ----

abstract class Rows implements RowCache {
  abstract readonly storage: CacheStorage;
  readonly rowSize: number;
  constructor(readonly shape: readonly number[]) {
    this.rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
  }
  abstract write(start: number, data: Float32Array): void;
  protected abstract readRow(row: number, into: Float32Array, at: number): void;
  abstract close(): void;

  protected check(start: number, n: number): void {
    if (start < 0 || start + n > this.shape[0]! || !Number.isInteger(n)) throw new RangeError(`cache rows ${start}..${start + n} outside 0..${this.shape[0]}`);
  }

  gather(idx: readonly number[], into: Float32Array): Float32Array {
    idx.forEach((row, k) => {
      this.check(row, 1);
      this.readRow(row, into, k * this.rowSize);
    });
    return into;
  }

  rows(start: number, end: number, into?: Float32Array): Float32Array {
    this.check(start, end - start);
    const out = into ?? new Float32Array((end - start) * this.rowSize);
    for (let r = start; r < end; r++) this.readRow(r, out, (r - start) * this.rowSize);
    return out;
  }
}

class Float32Rows extends Rows {
  readonly storage = 'float32';
  private data: Float32Array | null;
  constructor(shape: readonly number[]) {
    super(shape);
    this.data = new Float32Array(shape[0]! * this.rowSize);
  }
  write(start: number, data: Float32Array): void {
    this.check(start, data.length / this.rowSize);
    this.live().set(data, start * this.rowSize);
  }
  protected readRow(row: number, into: Float32Array, at: number): void {
    into.set(this.live().subarray(row * this.rowSize, (row + 1) * this.rowSize), at);
  }
  override rows(start: number, end: number, into?: Float32Array): Float32Array {
    this.check(start, end - start);
    const view = this.live().subarray(start * this.rowSize, end * this.rowSize);
    if (!into) return view.slice();
    into.set(view);
    return into;
  }
  close(): void {
    this.data = null;
  }
  private live(): Float32Array {
    if (!this.data) throw new Error('cache used after close()');
    return this.data;
  }
}

class Float16Rows extends Rows {
  readonly storage = 'float16';
  private data: Uint16Array | null;
  constructor(shape: readonly number[]) {
    super(shape);
    this.data = new Uint16Array(shape[0]! * this.rowSize);
  }
  write(start: number, data: Float32Array): void {
    this.check(start, data.length / this.rowSize);
    encodeHalf(data, this.live().subarray(start * this.rowSize, start * this.rowSize + data.length));
  }
  protected readRow(row: number, into: Float32Array, at: number): void {
    decodeHalf(this.live().subarray(row * this.rowSize, (row + 1) * this.rowSize), into, at);
  }
  close(): void {
    this.data = null;
  }
  private live(): Uint16Array {
    if (!this.data) throw new Error('cache used after close()');
    return this.data;
  }
}

class SpilledRows extends Rows {
  readonly storage = 'spill';
  private readonly halfRow: Uint16Array;
  constructor(
    shape: readonly number[],
    private readonly file: SpillFile,
  ) {
    super(shape);
    this.halfRow = new Uint16Array(this.rowSize);
  }
  write(start: number, data: Float32Array): void {
    const n = data.length / this.rowSize;
    this.check(start, n);
    const half = new Uint16Array(data.length);
    encodeHalf(data, half);
    this.file.write(start * this.rowSize * 2, new Uint8Array(half.buffer));
  }
  protected readRow(row: number, into: Float32Array, at: number): void {
    this.file.read(row * this.rowSize * 2, new Uint8Array(this.halfRow.buffer));
    decodeHalf(this.halfRow, into, at);
  }
  close(): void {
    this.file.close();
  }
}

let spillCount = 0;

/** An empty cache of `shape` ([rows, ...row]) in `storage`; 'spill' needs a store. */
export async function createRowCache(shape: readonly number[], storage: CacheStorage, spill?: SpillStore): Promise<RowCache> {
  if (storage === 'float32') return new Float32Rows(shape);
  if (storage === 'float16') return new Float16Rows(shape);
  if (!spill) throw new Error('spilled caches need a place to spill to (a SpillStore)');
  return new SpilledRows(shape, await spill.open(`cache-${++spillCount}.f16`));
}

/** Rows `idx` of `cache` as a batch tensor [idx.length, ...row shape], into `into`. */
export function gatherBatch(cache: RowCache, idx: readonly number[], into: Float32Array): { shape: number[]; data: Float32Array } {
  return { shape: [idx.length, ...cache.shape.slice(1)], data: cache.gather(idx, into) };
}
