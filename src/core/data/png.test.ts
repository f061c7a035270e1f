import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { decodePng, isPng, ImageDecodeError, type DecodedImage } from './png';
import { CHANNELS, chunk, deflate, encode, ihdr, png, SIG } from '../testing/png-writer';

// ---------------------------------------------------------------------------
// Fixtures (written by __fixtures__/make-fixtures.py, expected pixels in NAME.json)
// ---------------------------------------------------------------------------

interface Expected {
  width: number;
  height: number;
  channels: number;
  bitDepth: number;
  data: number[];
  animated?: boolean;
}

const fixtureUrl = (file: string) => new URL(`./__fixtures__/${file}`, import.meta.url);
const loadPng = (name: string) => new Uint8Array(readFileSync(fixtureUrl(`${name}.png`)));
const loadExpected = (name: string) => JSON.parse(readFileSync(fixtureUrl(`${name}.json`), 'utf8')) as Expected;

function expectImage(img: DecodedImage, exp: Expected) {
  expect({ width: img.width, height: img.height, channels: img.channels, bitDepth: img.bitDepth }).toEqual({
    width: exp.width,
    height: exp.height,
    channels: exp.channels,
    bitDepth: exp.bitDepth,
  });
  expect(img.data).toBeInstanceOf(exp.bitDepth === 16 ? Uint16Array : Uint8Array);
  expect(img.data.length).toBe(exp.width * exp.height * exp.channels);
  expect(Array.from(img.data)).toEqual(exp.data);
  expect(img.animated).toBe(exp.animated);
}

/** Deterministic pseudo-random integers in [0, max]. */
function randomSamples(n: number, max: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % (max + 1);
  });
}

/** Splits a PNG's chunks so we can rewrite them. */
function parseChunks(bytes: Uint8Array): { type: string; data: Uint8Array }[] {
  const chunks = [];
  for (let p = 8; p < bytes.length; ) {
    const len = new DataView(bytes.buffer, bytes.byteOffset + p).getUint32(0);
    chunks.push({ type: String.fromCharCode(...bytes.subarray(p + 4, p + 8)), data: bytes.subarray(p + 8, p + 8 + len) });
    p += 12 + len;
  }
  return chunks;
}

async function decodeError(bytes: Uint8Array): Promise<ImageDecodeError> {
  try {
    await decodePng(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(ImageDecodeError);
    return err as ImageDecodeError;
  }
  throw new Error('expected decodePng to throw');
}

// ---------------------------------------------------------------------------

describe('decodePng: fixtures', () => {
  const names = [
    'grey8', 'grey1', 'grey16', 'rgb8', 'rgba8', 'grey-alpha', 'palette-trns', 'palette4', 'rgb-trns',
    'interlaced-rgb8', 'interlaced-grey2', 'multi-idat-rgba16', 'animated',
  ];
  for (const name of names) {
    it(name, async () => {
      expectImage(await decodePng(loadPng(name)), loadExpected(name));
    });
  }

  it('reassembles image data split over many IDAT chunks (one byte each)', async () => {
    const chunks = parseChunks(loadPng('rgb8'));
    const z = chunks.filter((c) => c.type === 'IDAT').flatMap((c) => Array.from(c.data));
    const rechunked = png(
      ...chunks.filter((c) => c.type === 'IHDR').map((c) => chunk(c.type, c.data)),
      ...z.map((b) => chunk('IDAT', [b])),
      chunk('IEND'),
    );
    expectImage(await decodePng(rechunked), loadExpected('rgb8'));
  });

  it('decodes from a view with a non-zero byteOffset (e.g. a Node Buffer slice)', async () => {
    const file = loadPng('rgba8');
    const padded = new Uint8Array(file.length + 13);
    padded.set(file, 7);
    expectImage(await decodePng(padded.subarray(7, 7 + file.length)), loadExpected('rgba8'));
  });
});

describe('decodePng: every colour type, bit depth and interlace mode', () => {
  const combos: [number, number][] = [
    [0, 1], [0, 2], [0, 4], [0, 8], [0, 16], [2, 8], [2, 16], [3, 1], [3, 2], [3, 4], [3, 8], [4, 8], [4, 16], [6, 8], [6, 16],
  ];
  // Sizes chosen to leave empty Adam7 passes (1x1, 3x2) and odd row padding (9x7).
  const sizes: [number, number][] = [[1, 1], [3, 2], [9, 7]];

  for (const [colorType, depth] of combos) {
    for (const interlace of [false, true]) {
      it(`colour type ${colorType}, ${depth}-bit${interlace ? ', Adam7' : ''}`, async () => {
        for (const [width, height] of sizes) {
          const channels = CHANNELS[colorType]!;
          const n = width * height * channels;
          const samples = randomSamples(n, (1 << depth) - 1, colorType * 100 + depth + width);
          let plte: number[] | undefined;
          let expected = samples;
          if (colorType === 3) {
            plte = randomSamples(3 << depth, 255, depth);
            expected = samples.flatMap((i) => plte!.slice(i * 3, i * 3 + 3));
          } else if (depth < 8) {
            expected = samples.map((v) => (v * 255) / ((1 << depth) - 1));
          }
          const img = await decodePng(await encode({ width, height, colorType, depth, samples, interlace, plte }));
          expect(img.channels).toBe(colorType === 3 ? 3 : channels);
          expect(img.bitDepth).toBe(depth === 16 ? 16 : 8);
          expect(Array.from(img.data)).toEqual(expected);
        }
      });
    }
  }

  it('expands a grey colour key (tRNS) into an alpha channel, 16-bit', async () => {
    const samples = [0, 1000, 65535, 1000, 7];
    const img = await decodePng(await encode({ width: 5, height: 1, colorType: 0, depth: 16, samples, trns: [0x03, 0xe8] }));
    expect(img.channels).toBe(2);
    expect(Array.from(img.data)).toEqual([0, 65535, 1000, 0, 65535, 65535, 1000, 0, 7, 65535]);
  });

  it('compares a sub-byte grey colour key before scaling', async () => {
    const img = await decodePng(await encode({ width: 4, height: 1, colorType: 0, depth: 2, samples: [0, 1, 2, 3], trns: [0, 2] }));
    expect(Array.from(img.data)).toEqual([0, 255, 85, 255, 170, 0, 255, 255]);
  });

  it('maps palette indices beyond PLTE (and beyond tRNS) to black / opaque', async () => {
    const img = await decodePng(
      await encode({ width: 3, height: 1, colorType: 3, depth: 8, samples: [0, 1, 5], plte: [9, 8, 7, 6, 5, 4], trns: [10] }),
    );
    expect(img.channels).toBe(4);
    expect(Array.from(img.data)).toEqual([9, 8, 7, 10, 6, 5, 4, 255, 0, 0, 0, 255]);
  });

  it('breaks Paeth ties in the spec order (left, then up, then upper-left)', async () => {
    // Second pixel of row 1: left=6, up=3, upper-left=5 gives |p-up| == |p-upperLeft| == 1, so "up" must win.
    const raw = new Uint8Array([0, 5, 3, 4, 1, 97]);
    const img = await decodePng(png(ihdr(2, 2), chunk('IDAT', await deflate(raw)), chunk('IEND')));
    expect(Array.from(img.data)).toEqual([5, 3, 6, 100]);
  });

  it('ignores unknown ancillary chunks', async () => {
    const chunks = parseChunks(loadPng('grey8'));
    const withExtra = png(...chunks.flatMap((c) => (c.type === 'IDAT' ? [chunk('zzZz', [1, 2, 3])] : []).concat([chunk(c.type, c.data)])));
    expectImage(await decodePng(withExtra), loadExpected('grey8'));
  });
});

describe('decodePng: errors', () => {
  const good = () => loadPng('rgb8');

  it('rejects a wrong signature and empty input', async () => {
    const gif = new TextEncoder().encode('GIF89a\x01\x00\x01\x00\x00\x00\x00');
    expect((await decodeError(gif)).message).toMatch(/not a png/i);
    const bad = good();
    bad[1] = 0x51;
    expect((await decodeError(bad)).message).toMatch(/not a png/i);
    expect((await decodeError(new Uint8Array(0))).message).toMatch(/not a png/i);
  });

  it('reports truncation at every possible cut point', async () => {
    const file = good();
    for (let len = 1; len < file.length; len++) {
      const err = await decodeError(file.subarray(0, len));
      expect(err.message, `cut at ${len}`).toMatch(/truncated/);
    }
  });

  it('detects a flipped CRC byte and corrupted chunk data', async () => {
    const chunks = parseChunks(good());
    let pos = 8;
    for (const c of chunks) {
      const bad = good();
      bad[pos + 8 + c.data.length + 3]! ^= 0x01;
      expect((await decodeError(bad)).message).toMatch(new RegExp(`CRC mismatch in ${c.type} chunk`));
      pos += 12 + c.data.length;
    }
    const bad = good();
    bad[8 + 8 + 13 + 4 + 8 + 2]! ^= 0x80; // inside IDAT's data
    expect((await decodeError(bad)).message).toMatch(/CRC mismatch in IDAT/);
  });

  it('requires IHDR first, an IDAT, and PLTE for palette images', async () => {
    const z = Array.from(await deflate(new Uint8Array([0, 0])));
    expect((await decodeError(png(chunk('IDAT', z), chunk('IEND')))).message).toMatch(/missing IHDR/);
    expect((await decodeError(png(ihdr(1, 1), chunk('IEND')))).message).toMatch(/missing IDAT/);
    expect((await decodeError(png(ihdr(1, 1, 8, 3), chunk('IDAT', z), chunk('IEND')))).message).toMatch(/missing PLTE/);
  });

  it('rejects bad dimensions', async () => {
    for (const [w, h] of [[0, 5], [5, 0], [16385, 1], [1, 16385], [16384, 4097], [0xffffffff, 1]]) {
      const err = await decodeError(png(ihdr(w!, h!), chunk('IEND')));
      expect(err.message).toMatch(/dimensions/);
    }
    // Exactly 64 M pixels passes the size check (and then fails on the missing IDAT).
    expect((await decodeError(png(ihdr(16384, 4096), chunk('IEND')))).message).toMatch(/missing IDAT/);
  });

  it('rejects unsupported methods, colour types and bit depths', async () => {
    const cases: [number[], RegExp][] = [
      [ihdr(1, 1, 8, 0, 0, 1, 0), /compression method 1/],
      [ihdr(1, 1, 8, 0, 0, 0, 1), /filter method 1/],
      [ihdr(1, 1, 8, 0, 2), /interlace method 2/],
      [ihdr(1, 1, 8, 5), /colour type 5/],
      [ihdr(1, 1, 3, 0), /bit depth 3/],
      [ihdr(1, 1, 16, 3), /bit depth 16/],
      [ihdr(1, 1, 4, 2), /bit depth 4/],
      [chunk('IHDR', [0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0]), /IHDR chunk has length 12/],
    ];
    for (const [header, pattern] of cases) {
      expect((await decodeError(png(header, chunk('IEND')))).message).toMatch(pattern);
    }
  });

  it('rejects decompressed data of the wrong length', async () => {
    // A 2x2 8-bit grey image needs 2 rows of (1 filter byte + 2 bytes).
    const short = await deflate(new Uint8Array([0, 1, 2, 0, 3]));
    expect((await decodeError(png(ihdr(2, 2), chunk('IDAT', short), chunk('IEND')))).message).toMatch(/too short \(5 of 6 bytes\)/);
    const long = await deflate(new Uint8Array(7));
    expect((await decodeError(png(ihdr(2, 2), chunk('IDAT', long), chunk('IEND')))).message).toMatch(/longer than expected/);
    const huge = await deflate(new Uint8Array(1 << 20)); // stops early instead of buffering it all
    expect((await decodeError(png(ihdr(2, 2), chunk('IDAT', huge), chunk('IEND')))).message).toMatch(/longer than expected/);
  });

  it('rejects corrupt zlib data, an unknown filter type and unknown critical chunks', async () => {
    const garbage = [0x78, 0x9c, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13];
    expect((await decodeError(png(ihdr(2, 2), chunk('IDAT', garbage), chunk('IEND')))).message).toMatch(/zlib/);
    const badFilter = await deflate(new Uint8Array([0, 1, 2, 5, 3, 4]));
    expect((await decodeError(png(ihdr(2, 2), chunk('IDAT', badFilter), chunk('IEND')))).message).toMatch(/filter type 5 on scanline 1/);
    const ok = await deflate(new Uint8Array(6));
    expect((await decodeError(png(ihdr(2, 2), chunk('CgBI', [0]), chunk('IDAT', ok), chunk('IEND')))).message).toMatch(
      /critical chunk CgBI/,
    );
  });

  it('throws errors that are Error instances named ImageDecodeError', async () => {
    const err = await decodeError(new Uint8Array([1, 2, 3]));
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ImageDecodeError');
  });
});

describe('isPng', () => {
  it('checks only the signature', () => {
    expect(isPng(loadPng('grey8'))).toBe(true);
    expect(isPng(new Uint8Array(SIG))).toBe(true);
    expect(isPng(new Uint8Array(SIG.slice(0, 7)))).toBe(false);
    expect(isPng(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0, 0, 0]))).toBe(false);
    expect(isPng(new Uint8Array(0))).toBe(false);
  });
});
