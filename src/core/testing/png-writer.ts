import { crc32 } from 'node:zlib';

/**
 * A tiny PNG encoder for tests: every colour type, bit depth and Adam7 interlacing, each filter
 * type in turn, and the pieces (chunks, IHDR, deflate) to write deliberately broken files.
 */

export const SIG = [137, 80, 78, 71, 13, 10, 26, 10];
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;
export const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

export function chunk(type: string, data: ArrayLike<number> = []): number[] {
  const body = [...type].map((c) => c.charCodeAt(0)).concat(Array.from(data));
  return [...u32(data.length), ...body, ...u32(crc32(new Uint8Array(body)))];
}

export function png(...chunks: number[][]): Uint8Array {
  return new Uint8Array([...SIG, ...chunks.flat()]);
}

export function ihdr(width: number, height: number, depth = 8, colorType = 0, interlace = 0, compression = 0, filter = 0) {
  return chunk('IHDR', [...u32(width), ...u32(height), depth, colorType, compression, filter, interlace]);
}

export async function deflate(raw: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Packs samples into filtered scanlines (filter type cycles 0..4 across rows). */
function scanlines(width: number, height: number, depth: number, channels: number, samples: number[], interlace: boolean): Uint8Array {
  const passes = interlace ? ADAM7 : ([[0, 0, 1, 1]] as const);
  const bpp = Math.max(1, (channels * depth) >> 3);
  const out: number[] = [];
  let rowNo = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const xs: number[] = [];
    for (let x = x0; x < width; x += dx) xs.push(x);
    if (xs.length === 0) continue;
    let prev: number[] | undefined;
    for (let y = y0; y < height; y += dy) {
      const row: number[] = [];
      let acc = 0, bits = 0;
      for (const x of xs) {
        for (let c = 0; c < channels; c++) {
          const v = samples[(y * width + x) * channels + c]!;
          if (depth === 16) row.push(v >> 8, v & 255);
          else {
            acc = (acc << depth) | v;
            bits += depth;
            if (bits === 8) { row.push(acc); acc = 0; bits = 0; }
          }
        }
      }
      if (bits > 0) row.push(acc << (8 - bits));
      const type = rowNo++ % 5;
      out.push(type);
      row.forEach((x, i) => {
        const a = i >= bpp ? row[i - bpp]! : 0;
        const b = prev ? prev[i]! : 0;
        const c = prev && i >= bpp ? prev[i - bpp]! : 0;
        const pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][type]!;
        out.push((x - pred) & 255);
      });
      prev = row;
    }
  }
  return new Uint8Array(out);
}

export interface EncodeOptions {
  width: number;
  height: number;
  colorType: number;
  depth: number;
  samples: number[];
  interlace?: boolean | undefined;
  plte?: number[] | undefined;
  trns?: number[] | undefined;
}

export async function encode(o: EncodeOptions): Promise<Uint8Array> {
  const channels = CHANNELS[o.colorType]!;
  const z = await deflate(scanlines(o.width, o.height, o.depth, channels, o.samples, o.interlace ?? false));
  return png(
    ihdr(o.width, o.height, o.depth, o.colorType, o.interlace ? 1 : 0),
    ...(o.plte ? [chunk('PLTE', o.plte)] : []),
    ...(o.trns ? [chunk('tRNS', o.trns)] : []),
    chunk('IDAT', z),
    chunk('IEND'),
  );
}
