/**
 * Dependency-free PNG decoder (no DOM), so the same code path runs in Node, in a
 * Web Worker and under vitest. Inflate is delegated to the platform's
 * DecompressionStream, which is why decoding is async.
 *
 * Output conventions (chosen so callers never need to know the PNG's storage format):
 *  - 16-bit images stay 16-bit (Uint16Array); everything else becomes 8-bit.
 *  - 1/2/4-bit greyscale is scaled to 0..255; palette images are expanded to RGB.
 *  - tRNS becomes a real alpha channel: palette -> RGBA, grey -> grey+alpha, RGB -> RGBA.
 */

export interface DecodedImage {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  /** 32: float samples already in [0, 1] (from .npy arrays). */
  bitDepth: 8 | 16 | 32;
  /** Row-major, channels interleaved; 16-bit samples as Uint16Array, float samples as Float32Array. */
  data: Uint8Array | Uint16Array | Float32Array;
  /** Set when the file is an APNG; only the default image is decoded. */
  animated?: boolean;
}

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const MAX_SIDE = 16384;
const MAX_PIXELS = 64 * 1024 * 1024;
/** Deflate's largest possible expansion (258-byte matches coded in 2 bits, plus block overhead), with a margin. */
const MAX_INFLATE_RATIO = 1040;

// Samples per pixel and legal bit depths, indexed by PNG colour type.
const COLOR_TYPES: Record<number, { channels: number; depths: number[] }> = {
  0: { channels: 1, depths: [1, 2, 4, 8, 16] },
  2: { channels: 3, depths: [8, 16] },
  3: { channels: 1, depths: [1, 2, 4, 8] },
  4: { channels: 2, depths: [8, 16] },
  6: { channels: 4, depths: [8, 16] },
};

// Pass geometry as [xStart, yStart, xStep, yStep]; a non-interlaced image is one "pass".
type Pass = readonly [number, number, number, number];
const ADAM7: readonly Pass[] = [
  [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
];
const SINGLE_PASS: readonly Pass[] = [[0, 0, 1, 1]];

function fail(message: string): never {
  throw new ImageDecodeError(`Invalid PNG: ${message}`);
}

export function isPng(bytes: Uint8Array): boolean {
  if (bytes.length < SIGNATURE.length) return false;
  return SIGNATURE.every((b, i) => bytes[i] === b);
}

let crcTable: Uint32Array | undefined;

export function crc32(bytes: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function readU32(bytes: Uint8Array, pos: number): number {
  return ((bytes[pos]! << 24) | (bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!) >>> 0;
}

function passSize(width: number, height: number, [x0, y0, dx, dy]: Pass): [number, number] {
  return [width > x0 ? Math.ceil((width - x0) / dx) : 0, height > y0 ? Math.ceil((height - y0) / dy) : 0];
}

export async function decodePng(bytes: Uint8Array): Promise<DecodedImage> {
  if (!isPng(bytes)) {
    const prefix = bytes.length > 0 && bytes.length < SIGNATURE.length && SIGNATURE.slice(0, bytes.length).every((b, i) => bytes[i] === b);
    throw new ImageDecodeError(
      prefix ? 'Invalid PNG: file is truncated (incomplete signature)' : 'Not a PNG file (bad signature)',
    );
  }

  let header: { width: number; height: number; depth: number; colorType: number; interlaced: boolean } | undefined;
  let palette: Uint8Array | undefined;
  let trns: Uint8Array | undefined;
  let animated = false;
  const idat: Uint8Array[] = [];
  let idatLength = 0;

  let pos = SIGNATURE.length;
  for (let seenEnd = false; !seenEnd; ) {
    if (pos + 8 > bytes.length) fail(`file is truncated (expected a chunk at byte ${pos}, file has ${bytes.length} bytes)`);
    const length = readU32(bytes, pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    const dataStart = pos + 8;
    const dataEnd = dataStart + length;
    if (length > 0x7fffffff || dataEnd + 4 > bytes.length) fail(`file is truncated inside the ${type} chunk at byte ${pos}`);
    if (crc32(bytes, pos + 4, dataEnd) !== readU32(bytes, dataEnd)) fail(`CRC mismatch in ${type} chunk at byte ${pos} (file is corrupt)`);
    const data = bytes.subarray(dataStart, dataEnd);
    if (!header && type !== 'IHDR') fail(`missing IHDR (first chunk is ${type})`);

    switch (type) {
      case 'IHDR': {
        if (header) fail('duplicate IHDR chunk');
        if (length !== 13) fail(`IHDR chunk has length ${length}, expected 13`);
        const width = readU32(data, 0);
        const height = readU32(data, 4);
        const [depth, colorType, compression, filter, interlace] = [data[8]!, data[9]!, data[10]!, data[11]!, data[12]!];
        if (width === 0 || height === 0 || width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS) {
          fail(`unsupported dimensions ${width}x${height} (each side must be 1..${MAX_SIDE}, at most ${MAX_PIXELS} pixels)`);
        }
        const ct = COLOR_TYPES[colorType];
        if (!ct) fail(`unknown colour type ${colorType}`);
        if (!ct.depths.includes(depth)) fail(`bit depth ${depth} is not allowed for colour type ${colorType}`);
        if (compression !== 0) fail(`unsupported compression method ${compression}`);
        if (filter !== 0) fail(`unsupported filter method ${filter}`);
        if (interlace > 1) fail(`unsupported interlace method ${interlace}`);
        header = { width, height, depth, colorType, interlaced: interlace === 1 };
        break;
      }
      case 'PLTE':
        if (length === 0 || length % 3 !== 0 || length > 768) fail(`PLTE chunk has invalid length ${length}`);
        palette = data;
        break;
      case 'tRNS':
        trns = data;
        break;
      case 'IDAT':
        idat.push(data);
        idatLength += length;
        break;
      case 'acTL':
        animated = true;
        break;
      case 'IEND':
        seenEnd = true;
        break;
      default:
        // An unknown critical chunk (uppercase first letter) may change how pixels must be read.
        if (type.charCodeAt(0) < 97) fail(`unsupported critical chunk ${type}`);
    }
    pos = dataEnd + 4;
  }

  if (!header) fail('missing IHDR chunk');
  if (idat.length === 0) fail('missing IDAT chunk');
  const { width, height, depth, colorType, interlaced } = header;
  if (colorType === 3 && !palette) fail('missing PLTE chunk for a palette image');

  const srcChannels = COLOR_TYPES[colorType]!.channels;
  const bitsPerPixel = srcChannels * depth;
  const filterBpp = Math.max(1, bitsPerPixel >> 3);
  const passes = interlaced ? ADAM7 : SINGLE_PASS;
  let expected = 0;
  for (const pass of passes) {
    const [pw, ph] = passSize(width, height, pass);
    if (pw > 0) expected += ph * (1 + Math.ceil((pw * bitsPerPixel) / 8));
  }

  // deflate expands at most ~1032:1: a header promising more than the data can hold is refused
  // before the image buffers are allocated (a 100-byte file must not make us reserve 512 MB)
  if (expected > idatLength * MAX_INFLATE_RATIO + 1024) fail(`the image data (${idatLength} bytes compressed) is too short for a ${width}x${height} image`);
  const compressed = new Uint8Array(idatLength);
  let off = 0;
  for (const part of idat) {
    compressed.set(part, off);
    off += part.length;
  }
  const raw = await inflate(compressed, expected);

  // Colour-key transparency only makes sense for grey/RGB; ignore it elsewhere rather than reject the file.
  const key = trns && (colorType === 0 || colorType === 2) && trns.length >= srcChannels * 2
    ? Array.from({ length: srcChannels }, (_, k) => (trns[2 * k]! << 8) | trns[2 * k + 1]!)
    : undefined;
  const paletteAlpha = colorType === 3 && trns !== undefined;
  const outChannels = (colorType === 3 ? (paletteAlpha ? 4 : 3) : srcChannels + (key ? 1 : 0)) as DecodedImage['channels'];
  const out = depth === 16 ? new Uint16Array(width * height * outChannels) : new Uint8Array(width * height * outChannels);

  // Out-of-range indices decode as opaque black instead of failing, as browsers do.
  const lut = new Uint8Array(256 * 4);
  if (palette) {
    for (let i = 0; i < 256; i++) {
      if (i * 3 < palette.length) lut.set(palette.subarray(i * 3, i * 3 + 3), i * 4);
      lut[i * 4 + 3] = trns && i < trns.length ? trns[i]! : 255;
    }
  }

  const mask = depth === 16 ? 0xffff : (1 << depth) - 1;
  const scale = depth < 8 ? 255 / mask : 1; // exact integer for depths 1, 2, 4
  const alphaMax = depth === 16 ? 0xffff : 0xff;

  let rowPos = 0;
  for (const pass of passes) {
    const [x0, y0, dx, dy] = pass;
    const [pw, ph] = passSize(width, height, pass);
    if (pw === 0) continue;
    const rowBytes = Math.ceil((pw * bitsPerPixel) / 8);
    unfilter(raw, rowPos, rowBytes, ph, filterBpp);

    for (let y = 0; y < ph; y++) {
      const rs = rowPos + 1; // skip the filter-type byte
      let o = ((y0 + y * dy) * width + x0) * outChannels;
      for (let x = 0; x < pw; x++, o += dx * outChannels) {
        let transparent = key !== undefined;
        for (let k = 0; k < srcChannels; k++) {
          const s = x * srcChannels + k;
          let v: number;
          if (depth === 16) {
            v = (raw[rs + 2 * s]! << 8) | raw[rs + 2 * s + 1]!;
          } else {
            const bit = s * depth;
            v = (raw[rs + (bit >>> 3)]! >> (8 - depth - (bit & 7))) & mask;
          }
          if (colorType === 3) {
            for (let c = 0; c < outChannels; c++) out[o + c] = lut[v * 4 + c]!;
          } else {
            out[o + k] = v * scale;
            if (transparent && v !== key![k]) transparent = false;
          }
        }
        if (key) out[o + srcChannels] = transparent ? 0 : alphaMax;
      }
      rowPos += rowBytes + 1;
    }
  }

  const image: DecodedImage = { width, height, channels: outChannels, bitDepth: depth === 16 ? 16 : 8, data: out };
  if (animated) image.animated = true;
  return image;
}

/** Reverses PNG scanline filtering in place; each row's predecessor is already unfiltered. */
function unfilter(buf: Uint8Array, start: number, rowBytes: number, rows: number, bpp: number): void {
  const stride = rowBytes + 1;
  for (let r = 0; r < rows; r++) {
    const rowStart = start + r * stride;
    const filter = buf[rowStart]!;
    const cur = rowStart + 1;
    const prev = cur - stride;
    const hasPrev = r > 0;
    switch (filter) {
      case 0:
        break;
      case 1: // Sub
        for (let i = bpp; i < rowBytes; i++) buf[cur + i] = buf[cur + i]! + buf[cur + i - bpp]!;
        break;
      case 2: // Up
        if (hasPrev) for (let i = 0; i < rowBytes; i++) buf[cur + i] = buf[cur + i]! + buf[prev + i]!;
        break;
      case 3: // Average
        for (let i = 0; i < rowBytes; i++) {
          const left = i >= bpp ? buf[cur + i - bpp]! : 0;
          const up = hasPrev ? buf[prev + i]! : 0;
          buf[cur + i] = buf[cur + i]! + ((left + up) >> 1);
        }
        break;
      case 4: // Paeth
        for (let i = 0; i < rowBytes; i++) {
          const a = i >= bpp ? buf[cur + i - bpp]! : 0;
          const b = hasPrev ? buf[prev + i]! : 0;
          const c = hasPrev && i >= bpp ? buf[prev + i - bpp]! : 0;
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          buf[cur + i] = buf[cur + i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        fail(`unknown filter type ${filter} on scanline ${r}`);
    }
  }
}

async function inflate(input: Uint8Array<ArrayBuffer>, expected: number): Promise<Uint8Array> {
  const out = new Uint8Array(expected);
  const stream = new DecompressionStream('deflate');
  const writer = stream.writable.getWriter();
  // Write and read concurrently: awaiting the write first can deadlock on backpressure.
  const written = writer.write(input).then(() => writer.close());
  written.catch(() => {}); // any failure also surfaces through the reader below
  const reader = stream.readable.getReader();
  let length = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (length + value.length > expected) {
        void reader.cancel().catch(() => {});
        fail(`decompressed image data is longer than expected (more than ${expected} bytes)`);
      }
      out.set(value, length);
      length += value.length;
    }
    await written;
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    fail(`corrupt image data, zlib inflate failed (${err instanceof Error ? err.message : String(err)})`);
  }
  if (length !== expected) fail(`decompressed image data is too short (${length} of ${expected} bytes)`);
  return out;
}
