import { rng } from '../random';

/**
 * Seeded mutations of valid inputs for fuzzing the decoders: bit flips, byte overwrites with
 * boundary values, truncations, duplicated and deleted runs. The same seed gives the same cases.
 */
export function* mutations(seed: Uint8Array, count: number, seedNumber = 1): Generator<Uint8Array> {
  const rand = rng(seedNumber);
  const int = (n: number): number => Math.floor(rand() * n);
  const special = [0, 1, 0x7f, 0x80, 0xff, 0xfe];
  for (let k = 0; k < count; k++) {
    let b = seed.slice();
    const edits = 1 + int(4);
    for (let e = 0; e < edits && b.length > 0; e++) {
      const at = int(b.length);
      switch (int(5)) {
        case 0:
          b[at] = b[at]! ^ (1 << int(8));
          break;
        case 1:
          b[at] = special[int(special.length)]!;
          break;
        case 2:
          b = b.slice(0, at);
          break;
        case 3: {
          const len = 1 + int(Math.min(64, b.length - at));
          const out = new Uint8Array(b.length + len);
          out.set(b.subarray(0, at + len));
          out.set(b.subarray(at), at + len);
          b = out;
          break;
        }
        default: {
          const len = 1 + int(Math.min(64, b.length - at));
          const out = new Uint8Array(b.length - len);
          out.set(b.subarray(0, at));
          out.set(b.subarray(at + len), at);
          b = out;
        }
      }
    }
    yield b;
  }
}

let crcTable: Uint32Array | undefined;
function crc32(b: Uint8Array, start: number, end: number): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Rewrites the CRC of every PNG chunk that still fits in the file, so that a mutated image gets
 * past the checksum into the header, inflate and filter code; without it nearly every case stops
 * at the first CRC check.
 */
export function fixPngCrcs(bytes: Uint8Array): Uint8Array {
  const b = bytes.slice();
  const view = new DataView(b.buffer);
  for (let pos = 8; pos + 12 <= b.length; ) {
    const end = pos + 8 + view.getUint32(pos);
    if (end + 4 > b.length) break;
    view.setUint32(end, crc32(b, pos + 4, end));
    pos = end + 4;
  }
  return b;
}

/**
 * Plans as a JSON file could hold them: each known field left out or set to a value drawn from
 * valid values, wrong types and edge cases, plus a stray field. Mutated JSON text mostly fails to
 * parse; these reach every check of the plan loader.
 */
export function* planValues(count: number, seedNumber = 1): Generator<unknown> {
  const rand = rng(seedNumber);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const any: unknown[] = [null, true, false, 0, -1, 1, 2.5, 3, 8, 9, 1e308, -0, '', 'rtn', 'brecq', 'lp', 'layer', '<img src=x onerror=alert(1)>', [], {}, [1, 2], { a: 4 }, { a: 'x' }, { a: 9 }, [{ merge: ['a'] }], [{ merge: ['a', 'b'] }], [{ split: 'a', after: 'b' }], [null], { __proto__: null }];
  const fields: Record<string, readonly unknown[]> = {
    method: ['rtn', 'adaround', 'brecq', 'qdrop', 'nwq', 'decoupleq', 'magic', 'RTN'],
    wbits: [2, 3, 4, 8, 1, 9, 4.5, '4'],
    abits: [null, 4, 8, 0, 16, 'none'],
    headStem8bit: [true, false, 'yes'],
    layerBits: [{}, { conv1: 4 }, { conv1: 1 }, { '': 8 }, { conv1: '4' }],
    scale: ['minmax', 'lp', 'l2'],
    iters: [1, 100, 0, -5, 1.5, '10'],
    seed: [0, 7, -1, 2 ** 53],
    granularity: ['layer', 'block', 'stage', 'net', 'model'],
    partitionEdits: [[], [{ merge: ['a', 'b'] }], [{ split: 'a', after: 'b' }], [{ merge: 'a' }], [{}], 'x'],
    lambda: [0, 0.01, -1, '0.1'],
    actIters: [0, 5, -1, 2.5],
    keep: [0, 0.5, 1, 1.5, -0.1],
    fisher: [true, false, 1],
    taps: ['block', 'layer', 'net'],
  };
  for (let k = 0; k < count; k++) {
    if (rand() < 0.05) {
      yield pick(any);
      continue;
    }
    const plan: Record<string, unknown> = {};
    for (const [name, values] of Object.entries(fields)) {
      const r = rand();
      if (r < 0.35) continue;
      plan[name] = r < 0.85 ? pick(values) : pick(any);
    }
    if (rand() < 0.1) plan[pick(['extra', '__proto__', 'constructor'])] = pick(any);
    yield plan;
  }
}
