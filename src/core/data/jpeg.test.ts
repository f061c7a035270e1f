import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { decodeJpeg, isJpeg } from './jpeg';
import { ImageDecodeError } from './png';
import { decodeImage } from './batches';

/**
 * Our pixels against libjpeg-turbo's (Pillow's decode, saved by __fixtures__/make-jpeg-fixtures.py).
 * Not bit-exact: libjpeg's default IDCT is a fixed-point approximation and ours is the exact float
 * transform, so a sample can differ by 1, and by up to 3 where the colour conversion adds a luma
 * and a (×1.402 or ×1.772) chroma difference. Measured on these files: max |Δ| 1 for grey, 2 for
 * 4:2:0 / 4:2:2 / 4:4:4 / progressive / restarts, 3 for 4:4:0; mean |Δ| 0.010–0.045.
 * Chroma upsampling follows libjpeg's "fancy" filter: the mean bound of 0.1 catches a departure
 * from it (swapping the vertical filter's two rounding biases alone gives a mean |Δ| of 0.33).
 */
interface Expected {
  width: number;
  height: number;
  channels: number;
  data: number[];
}

const fixture = (file: string): Uint8Array => new Uint8Array(readFileSync(new URL(`./__fixtures__/${file}`, import.meta.url)));
const expected = (name: string): Expected => JSON.parse(new TextDecoder().decode(fixture(`${name}.json`))) as Expected;

function compare(name: string): { max: number; mean: number } {
  const img = decodeJpeg(fixture(`${name}.jpg`));
  const exp = expected(name);
  expect({ width: img.width, height: img.height, channels: img.channels, bitDepth: img.bitDepth }).toEqual({ width: exp.width, height: exp.height, channels: exp.channels, bitDepth: 8 });
  expect(img.data).toBeInstanceOf(Uint8Array);
  expect(img.data.length).toBe(exp.data.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < exp.data.length; i++) {
    const d = Math.abs(img.data[i]! - exp.data[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / exp.data.length };
}

const CASES = [
  ['jpeg-420', 'baseline 4:2:0 RGB, 37×23'],
  ['jpeg-422', 'baseline 4:2:2'],
  ['jpeg-444', 'baseline 4:4:4'],
  ['jpeg-440', '4:4:0 (chroma halved vertically only)'],
  ['jpeg-grey', 'greyscale'],
  ['jpeg-progressive', 'progressive 4:2:0 with successive approximation'],
  ['jpeg-progressive-grey', 'progressive greyscale'],
  ['jpeg-restart', '4:2:0 with a restart every 2 MCUs'],
  ['jpeg-restart-grey', 'greyscale with a restart every 5 blocks'],
] as const;

describe('JPEG decoder, against libjpeg-turbo', () => {
  for (const [name, what] of CASES) {
    it(`${what} (${name})`, () => {
      const { max, mean } = compare(name);
      console.log(`${name}: max |Δ| ${max}, mean |Δ| ${mean.toFixed(3)}`);
      expect(max).toBeLessThanOrEqual(3);
      expect(mean).toBeLessThan(0.1);
    });
  }

  it('decodeImage dispatches JPEG by its signature', async () => {
    expect(isJpeg(fixture('jpeg-420.jpg'))).toBe(true);
    const img = await decodeImage({ path: 'calib/a.jpg', bytes: fixture('jpeg-420.jpg') });
    expect([img.width, img.height, img.channels]).toEqual([37, 23, 3]);
  });

  it('the Adobe APP14 transform flag 0 means the components are RGB, not YCbCr', () => {
    const bytes = fixture('jpeg-444.jpg');
    const ycc = decodeJpeg(bytes);
    // the same file with an APP14 "Adobe" segment, transform 0, after SOI and without JFIF's APP0
    const app14 = Uint8Array.of(0xff, 0xee, 0, 14, ...new TextEncoder().encode('Adobe'), 0, 100, 0, 0, 0, 0, 0);
    const withoutApp0 = dropSegment(bytes, 0xe0);
    const raw = decodeJpeg(concat(withoutApp0.subarray(0, 2), app14, withoutApp0.subarray(2)));
    expect(raw.channels).toBe(3);
    // now the output is the raw Y, Cb, Cr: converting it as JFIF does gives the normal decode back
    let max = 0;
    for (let i = 0; i < raw.data.length; i += 3) {
      const [y, cb, cr] = [raw.data[i]!, raw.data[i + 1]! - 128, raw.data[i + 2]! - 128];
      const rgb = [y + 1.402 * cr, y - 0.34414 * cb - 0.71414 * cr, y + 1.772 * cb].map((v) => Math.min(255, Math.max(0, Math.round(v))));
      for (let k = 0; k < 3; k++) max = Math.max(max, Math.abs(rgb[k]! - ycc.data[i + k]!));
    }
    expect(max).toBeLessThanOrEqual(1);
    expect(Array.from(raw.data.subarray(0, 30))).not.toEqual(Array.from(ycc.data.subarray(0, 30)));
  });

  it('refuses CMYK, 12-bit and arithmetic-coded files by name', () => {
    expect(() => decodeJpeg(fixture('cmyk.jpg'))).toThrow(new ImageDecodeError('Unsupported JPEG: CMYK and YCCK JPEG (4 components) are not supported; convert the image to RGB'));
    const bytes = fixture('jpeg-444.jpg');
    const sof = findMarker(bytes, 0xc0);
    const twelve = bytes.slice();
    twelve[sof + 4] = 12;
    expect(() => decodeJpeg(twelve)).toThrow(/Unsupported JPEG: 12-bit samples are not supported/);
    const arithmetic = bytes.slice();
    arithmetic[sof + 1] = 0xc9;
    expect(() => decodeJpeg(arithmetic)).toThrow(/Unsupported JPEG: arithmetic-coded JPEG is not supported/);
  });

  it('a truncated file, and a tiny file whose header promises a huge image, are ImageDecodeErrors', () => {
    const bytes = fixture('jpeg-420.jpg');
    expect(() => decodeJpeg(bytes.subarray(0, bytes.length - 40))).toThrow(/Invalid JPEG: file is truncated \(no end-of-image marker\)/);
    const huge = bytes.slice();
    const sof = findMarker(huge, 0xc0);
    huge.set([0x10, 0x00, 0x40, 0x00], sof + 5); // 16384 wide, 4096 high
    expect(() => decodeJpeg(huge)).toThrow(/Invalid JPEG: the file \(983 bytes\) is too short for a 16384x4096 image/);
  });
});

function findMarker(bytes: Uint8Array, marker: number): number {
  for (let p = 2; p + 4 <= bytes.length; ) {
    if (bytes[p + 1] === marker) return p;
    p += 2 + ((bytes[p + 2]! << 8) | bytes[p + 3]!);
  }
  throw new Error(`no marker 0xFF${marker.toString(16)}`);
}

function dropSegment(bytes: Uint8Array, marker: number): Uint8Array {
  const p = findMarker(bytes, marker);
  const end = p + 2 + ((bytes[p + 2]! << 8) | bytes[p + 3]!);
  return concat(bytes.subarray(0, p), bytes.subarray(end));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}
