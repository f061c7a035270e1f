/**
 * Dependency-free JPEG decoder (no DOM, no native code), written from ITU-T T.81, so that the
 * studio's worker, the CLI and the tests compute the same pixels from the same file.
 *
 * Reads: baseline and extended sequential (SOF0, SOF1) and progressive (SOF2) DCT, Huffman coded,
 * 8-bit samples, 1 component (grey) or 3 (YCbCr, converted to RGB as JFIF says; RGB as such when
 * the Adobe APP14 transform flag is 0 or the component ids are 'R','G','B'), any sampling factors
 * 1..4, restart intervals.
 * Refuses, with an ImageDecodeError naming the reason: 4 components (CMYK / YCCK: converting them
 * needs the printer's colour profile to mean anything, so a "conversion" would be a guess),
 * 12-bit samples, arithmetic coding (SOF9+), lossless and hierarchical JPEG, a height given later
 * by DNL.
 *
 * How close it is to libjpeg(-turbo), which PIL and browsers use (measured in jpeg.test.ts):
 *  - the IDCT is the exact separable float transform of T.81 A.3.3, rounded; libjpeg's default
 *    ("islow") is a 13-bit fixed-point approximation of it, so single samples differ by 1 now and
 *    then, and by a little more where a colour conversion adds two such differences up;
 *  - chroma is upsampled as libjpeg's default "fancy" upsampling does for 2:1 ratios (triangular:
 *    each output sample is 3/4 of its nearest input sample and 1/4 of the next nearest), so
 *    4:2:0 and 4:2:2 images line up with what users see elsewhere; other ratios are replicated;
 *  - YCbCr → RGB uses JFIF's coefficients in 16-bit fixed point with rounding, as libjpeg does.
 */
import { ImageDecodeError, type DecodedImage } from './png';

const MAX_SIDE = 16384;
const MAX_PIXELS = 64 * 1024 * 1024;

function fail(message: string): never {
  throw new ImageDecodeError(`Invalid JPEG: ${message}`);
}

function refuse(message: string): never {
  throw new ImageDecodeError(`Unsupported JPEG: ${message}`);
}

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xd8;
}

/** Zig-zag position k → natural (row-major) index in the 8×8 block (T.81 figure A.6). */
const ZIGZAG = (() => {
  const out = new Uint8Array(64);
  let x = 0;
  let y = 0;
  for (let k = 0; k < 64; k++) {
    out[k] = y * 8 + x;
    if ((x + y) % 2 === 0) {
      if (x === 7) y++;
      else if (y === 0) x++;
      else (x++, y--);
    } else if (y === 7) x++;
    else if (x === 0) y++;
    else (x--, y++);
  }
  return out;
})();

/** IDCT basis: IDCT[u * 8 + x] = C(u)/2 · cos((2x + 1)uπ/16), so that one pass per axis gives T.81's 1/4 · C(u)C(v) scale. */
const IDCT = (() => {
  const t = new Float64Array(64);
  for (let u = 0; u < 8; u++) for (let x = 0; x < 8; x++) t[u * 8 + x] = (u === 0 ? Math.SQRT1_2 : 1) * 0.5 * Math.cos(((2 * x + 1) * u * Math.PI) / 16);
  return t;
})();

interface Huffman {
  /** Codes of up to LOOKUP_BITS bits: (length << 8) | value, 0 when no code of that length starts the bits. */
  lookup: Uint16Array;
  /** For longer codes (T.81 F.2.2.3): the largest code of each length (−1: none), the first code, and where its values start. */
  maxCode: Int32Array;
  minCode: Int32Array;
  valPtr: Int32Array;
  values: Uint8Array;
}

const LOOKUP_BITS = 9;

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const lookup = new Uint16Array(1 << LOOKUP_BITS);
  const maxCode = new Int32Array(17).fill(-1);
  const minCode = new Int32Array(17);
  const valPtr = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1]!;
    valPtr[len] = k;
    minCode[len] = code;
    for (let i = 0; i < n; i++, k++, code++) {
      if (len <= LOOKUP_BITS) {
        const shift = LOOKUP_BITS - len;
        lookup.fill((len << 8) | values[k]!, code << shift, (code + 1) << shift);
      }
    }
    if (n > 0) maxCode[len] = code - 1;
    // a table whose codes do not fit their lengths is not a prefix code (C.2)
    if (code > 1 << len) fail('a Huffman table has more codes than its code lengths allow');
    code <<= 1;
  }
  return { lookup, maxCode, minCode, valPtr, values };
}

/**
 * Bits of one scan's entropy-coded data, with the stuffed zero after each 0xFF removed. At a marker
 * (or the end of the file) it feeds zero bits, as libjpeg does, and leaves the marker in place for
 * the segment parser; reading is bounded by the scan's block count, so corrupt data cannot loop.
 */
class BitReader {
  private acc = 0;
  private count = 0;
  constructor(
    private readonly data: Uint8Array,
    public pos: number,
  ) {}

  private fill(): void {
    while (this.count <= 24) {
      let byte = 0;
      const p = this.pos;
      if (p < this.data.length) {
        byte = this.data[p]!;
        if (byte === 0xff) {
          const next = this.data[p + 1];
          if (next === 0x00) this.pos += 2;
          else byte = 0; // a marker: stop here
        } else this.pos++;
      }
      this.acc = (this.acc << 8) | byte;
      this.count += 8;
    }
  }

  bits(n: number): number {
    if (n === 0) return 0;
    if (this.count < n) this.fill();
    this.count -= n;
    return (this.acc >>> this.count) & ((1 << n) - 1);
  }

  bit(): number {
    if (this.count < 1) this.fill();
    this.count--;
    return (this.acc >>> this.count) & 1;
  }

  /** `s` bits as a signed value (T.81 F.2.2.1 EXTEND). */
  receiveExtend(s: number): number {
    if (s === 0) return 0;
    const v = this.bits(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  decode(h: Huffman): number {
    if (this.count < 16) this.fill();
    const peek = (this.acc >>> (this.count - 16)) & 0xffff;
    const e = h.lookup[peek >>> (16 - LOOKUP_BITS)]!;
    if (e !== 0) {
      this.count -= e >> 8;
      return e & 0xff;
    }
    for (let len = LOOKUP_BITS + 1; len <= 16; len++) {
      const code = peek >>> (16 - len);
      if (code <= h.maxCode[len]!) {
        this.count -= len;
        const i = h.valPtr[len]! + code - h.minCode[len]!;
        if (i >= h.values.length) break;
        return h.values[i]!;
      }
    }
    fail('corrupt entropy-coded data (a bit pattern that is no Huffman code)');
  }

  /** At a restart interval's end: drop the padding bits and step over the RSTn marker when it is there. */
  restart(): void {
    this.acc = 0;
    this.count = 0;
    const d = this.data;
    if (d[this.pos] === 0xff && d[this.pos + 1]! >= 0xd0 && d[this.pos + 1]! <= 0xd7) this.pos += 2;
  }
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Samples of this component in the image: ceil(width · h / hmax) × ceil(height · v / vmax). */
  width: number;
  height: number;
  /** Blocks stored per row and column: whole MCUs, which cover every block a scan can code. */
  blocksPerLine: number;
  blocksPerColumn: number;
  /** Quantized coefficients in natural order, 64 per block; filled by the scans, transformed at the end. */
  coefs: Int16Array;
  dcPred: number;
  dcTable: Huffman | undefined;
  acTable: Huffman | undefined;
}

interface Frame {
  width: number;
  height: number;
  progressive: boolean;
  components: Component[];
  hmax: number;
  vmax: number;
  mcusPerLine: number;
  mcusPerColumn: number;
}

export function decodeJpeg(bytes: Uint8Array): DecodedImage {
  if (!isJpeg(bytes)) throw new ImageDecodeError('Not a JPEG file (bad signature)');
  const quant: (Uint16Array | undefined)[] = [];
  const dcTables: (Huffman | undefined)[] = [];
  const acTables: (Huffman | undefined)[] = [];
  let frame: Frame | undefined;
  let restartInterval = 0;
  let adobeTransform: number | undefined;
  let jfif = false;
  let scans = 0;

  let pos = 2;
  for (;;) {
    // markers may be preceded by fill bytes (0xFF); anything else between segments is skipped, as libjpeg does
    while (pos < bytes.length && bytes[pos] !== 0xff) pos++;
    while (pos < bytes.length && bytes[pos] === 0xff) pos++;
    if (pos >= bytes.length) fail('file is truncated (no end-of-image marker)');
    const marker = bytes[pos++]!;
    if (marker === 0xd9) break; // EOI
    if (marker >= 0xd0 && marker <= 0xd7) continue; // a stray RSTn carries no segment
    if (marker === 0x01 || marker === 0xd8) continue; // TEM, or a repeated SOI
    if (pos + 2 > bytes.length) fail(`file is truncated inside the segment of marker 0xFF${hex(marker)}`);
    const length = (bytes[pos]! << 8) | bytes[pos + 1]!;
    if (length < 2 || pos + length > bytes.length) fail(`file is truncated inside the segment of marker 0xFF${hex(marker)}`);
    const seg = bytes.subarray(pos + 2, pos + length);
    pos += length;

    switch (marker) {
      case 0xdb: // DQT
        for (let p = 0; p < seg.length; ) {
          const pq = seg[p]! >> 4;
          const tq = seg[p]! & 15;
          if (pq > 1 || tq > 3) fail(`bad quantization table (precision ${pq}, id ${tq})`);
          const size = pq ? 128 : 64;
          if (p + 1 + size > seg.length) fail('a quantization table is truncated');
          const table = new Uint16Array(64);
          for (let k = 0; k < 64; k++) table[ZIGZAG[k]!] = pq ? (seg[p + 1 + 2 * k]! << 8) | seg[p + 2 + 2 * k]! : seg[p + 1 + k]!;
          quant[tq] = table;
          p += 1 + size;
        }
        break;
      case 0xc4: // DHT
        for (let p = 0; p < seg.length; ) {
          const tc = seg[p]! >> 4;
          const th = seg[p]! & 15;
          if (tc > 1 || th > 3) fail(`bad Huffman table (class ${tc}, id ${th})`);
          if (p + 17 > seg.length) fail('a Huffman table is truncated');
          const counts = seg.subarray(p + 1, p + 17);
          let n = 0;
          for (const c of counts) n += c;
          if (n > 256 || p + 17 + n > seg.length) fail('a Huffman table is truncated or has more than 256 codes');
          (tc === 0 ? dcTables : acTables)[th] = buildHuffman(counts, seg.slice(p + 17, p + 17 + n));
          p += 17 + n;
        }
        break;
      case 0xdd: // DRI
        if (seg.length < 2) fail('the restart interval segment is too short');
        restartInterval = (seg[0]! << 8) | seg[1]!;
        break;
      case 0xe0: // APP0: JFIF says 3 components are YCbCr
        if (seg.length >= 5 && String.fromCharCode(...seg.subarray(0, 5)) === 'JFIF\0') jfif = true;
        break;
      case 0xee: // APP14 (Adobe): its transform flag says whether 3 components are RGB (0) or YCbCr (1)
        if (seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobeTransform = seg[11]!;
        break;
      case 0xc0:
      case 0xc1:
      case 0xc2:
        if (frame) fail('more than one frame header (SOF)');
        frame = readFrame(seg, marker === 0xc2, bytes.length);
        break;
      case 0xc3:
        refuse('lossless JPEG (SOF3) is not supported; convert the image to PNG');
      case 0xc5:
      case 0xc6:
      case 0xc7:
        refuse('hierarchical JPEG (SOF5–7) is not supported; convert the image to PNG');
      case 0xc9:
      case 0xca:
      case 0xcb:
      case 0xcd:
      case 0xce:
      case 0xcf:
        refuse('arithmetic-coded JPEG is not supported; re-save it with Huffman coding or as PNG');
      case 0xdc:
        refuse('the image height is given after the first scan (DNL), which is not supported');
      case 0xda: {
        // SOS
        if (!frame) fail('a scan comes before the frame header (SOF)');
        pos = decodeScan(bytes, pos, seg, frame, dcTables, acTables, restartInterval);
        scans++;
        break;
      }
      default:
        // APPn, COM and the rest carry nothing the pixels depend on
        break;
    }
  }
  if (!frame) fail('no frame header (SOF)');
  if (scans === 0) fail('no image data (no scan)');
  for (const c of frame.components) if (!quant[c.tq]) fail(`component ${c.id} uses quantization table ${c.tq}, which is not defined`);
  return toImage(frame, quant as Uint16Array[], rgbComponents(frame, adobeTransform, jfif));
}

const hex = (b: number): string => b.toString(16).toUpperCase().padStart(2, '0');

function readFrame(seg: Uint8Array, progressive: boolean, fileLength: number): Frame {
  if (seg.length < 6) fail('the frame header is too short');
  const precision = seg[0]!;
  const height = (seg[1]! << 8) | seg[2]!;
  const width = (seg[3]! << 8) | seg[4]!;
  const n = seg[5]!;
  if (precision !== 8) refuse(`${precision}-bit samples are not supported (only 8-bit)`);
  if (height === 0) refuse('the image height is given after the first scan (DNL), which is not supported');
  if (width === 0 || width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS) {
    fail(`unsupported dimensions ${width}x${height} (each side must be 1..${MAX_SIDE}, at most ${MAX_PIXELS} pixels)`);
  }
  if (n === 4) refuse('CMYK and YCCK JPEG (4 components) are not supported; convert the image to RGB');
  if (n !== 1 && n !== 3) refuse(`${n} colour components are not supported (only grey or three-component colour)`);
  if (seg.length < 6 + 3 * n) fail('the frame header is too short');
  const raw = Array.from({ length: n }, (_, i) => ({ id: seg[6 + 3 * i]!, h: seg[7 + 3 * i]! >> 4, v: seg[7 + 3 * i]! & 15, tq: seg[8 + 3 * i]! }));
  for (const c of raw) {
    if (c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4) fail(`component ${c.id} has sampling factors ${c.h}x${c.v} (each must be 1..4)`);
    if (c.tq > 3) fail(`component ${c.id} names quantization table ${c.tq}`);
  }
  if (new Set(raw.map((c) => c.id)).size !== n) fail('two components share an id');
  const hmax = Math.max(...raw.map((c) => c.h));
  const vmax = Math.max(...raw.map((c) => c.v));
  const mcusPerLine = Math.ceil(width / (8 * hmax));
  const mcusPerColumn = Math.ceil(height / (8 * vmax));
  const components = raw.map((c): Component => {
    const blocksPerLine = mcusPerLine * c.h;
    const blocksPerColumn = mcusPerColumn * c.v;
    return { ...c, width: Math.ceil((width * c.h) / hmax), height: Math.ceil((height * c.v) / vmax), blocksPerLine, blocksPerColumn, coefs: new Int16Array(0), dcPred: 0, dcTable: undefined, acTable: undefined };
  });
  // every block of every component is coded in at least one scan with at least one bit, so a
  // header promising more blocks than the file has bits is refused before the buffers are made
  const blocks = components.reduce((s, c) => s + Math.ceil(c.width / 8) * Math.ceil(c.height / 8), 0);
  if (blocks > fileLength * 8) fail(`the file (${fileLength} bytes) is too short for a ${width}x${height} image`);
  for (const c of components) c.coefs = new Int16Array(c.blocksPerLine * c.blocksPerColumn * 64);
  return { width, height, progressive, components, hmax, vmax, mcusPerLine, mcusPerColumn };
}

/** Decodes one scan (T.81 F.2 sequential, G.2 progressive) into the components' coefficients; returns where its data ends. */
function decodeScan(bytes: Uint8Array, pos: number, seg: Uint8Array, frame: Frame, dcTables: (Huffman | undefined)[], acTables: (Huffman | undefined)[], restartInterval: number): number {
  const ns = seg[0] ?? 0;
  if (ns < 1 || ns > 4 || seg.length < 1 + 2 * ns + 3) fail('bad scan header');
  const comps: Component[] = [];
  for (let i = 0; i < ns; i++) {
    const c = frame.components.find((x) => x.id === seg[1 + 2 * i]);
    if (!c || comps.includes(c)) fail(`the scan names component ${seg[1 + 2 * i]}, which the frame does not have or the scan names twice`);
    c.dcTable = dcTables[seg[2 + 2 * i]! >> 4];
    c.acTable = acTables[seg[2 + 2 * i]! & 15];
    comps.push(c);
  }
  const ss = seg[1 + 2 * ns]!;
  const se = seg[2 + 2 * ns]!;
  const ah = seg[3 + 2 * ns]! >> 4;
  const al = seg[3 + 2 * ns]! & 15;

  let decodeBlock: (c: Component, offset: number) => void;
  const reader = new BitReader(bytes, pos);
  let eobrun = 0;
  const needDc = (c: Component): Huffman => c.dcTable ?? fail(`component ${c.id} uses a DC Huffman table that is not defined`);
  const needAc = (c: Component): Huffman => c.acTable ?? fail(`component ${c.id} uses an AC Huffman table that is not defined`);

  if (!frame.progressive) {
    // sequential: every coefficient of a block at once (F.2.2); Ss, Se, Ah, Al are fixed and not checked, as libjpeg does
    for (const c of comps) (needDc(c), needAc(c));
    decodeBlock = (c, o) => {
      const coefs = c.coefs;
      const t = reader.decode(c.dcTable!);
      if (t > 11) fail('corrupt entropy-coded data (a DC difference of more than 11 bits)');
      c.dcPred += reader.receiveExtend(t);
      coefs[o] = c.dcPred;
      for (let k = 1; k < 64; ) {
        const rs = reader.decode(c.acTable!);
        const s = rs & 15;
        const r = rs >> 4;
        if (s === 0) {
          if (r < 15) break; // EOB
          k += 16;
          continue;
        }
        k += r;
        if (k > 63) fail('corrupt entropy-coded data (a coefficient past the end of its block)');
        coefs[o + ZIGZAG[k]!] = reader.receiveExtend(s);
        k++;
      }
    };
  } else {
    if (se > 63 || ss > se || (ss === 0 && se !== 0) || al > 13 || ah > 13) fail(`bad progressive scan parameters (Ss ${ss}, Se ${se}, Ah ${ah}, Al ${al})`);
    if (ss > 0 && ns !== 1) fail('a progressive AC scan must hold one component');
    if (ss === 0) {
      if (ah === 0) {
        for (const c of comps) needDc(c);
        decodeBlock = (c, o) => {
          const t = reader.decode(c.dcTable!);
          if (t > 11) fail('corrupt entropy-coded data (a DC difference of more than 11 bits)');
          c.dcPred += reader.receiveExtend(t);
          c.coefs[o] = c.dcPred * (1 << al);
        };
      } else {
        decodeBlock = (c, o) => {
          if (reader.bit()) c.coefs[o] = c.coefs[o]! | (1 << al);
        };
      }
    } else if (ah === 0) {
      // first pass of a band (G.1.2.2): runs of end-of-bands span blocks
      const ac = needAc(comps[0]!);
      decodeBlock = (c, o) => {
        if (eobrun > 0) {
          eobrun--;
          return;
        }
        const coefs = c.coefs;
        for (let k = ss; k <= se; ) {
          const rs = reader.decode(ac);
          const s = rs & 15;
          const r = rs >> 4;
          if (s === 0) {
            if (r < 15) {
              eobrun = (1 << r) - 1 + reader.bits(r);
              break;
            }
            k += 16;
            continue;
          }
          k += r;
          if (k > 63) fail('corrupt entropy-coded data (a coefficient past the end of its block)');
          coefs[o + ZIGZAG[k]!] = reader.receiveExtend(s) * (1 << al);
          k++;
        }
      };
    } else {
      // refinement of a band (G.1.2.3): one more bit for coefficients already non-zero, new ones of ±1
      const ac = needAc(comps[0]!);
      const p1 = 1 << al;
      const m1 = -1 << al;
      const refine = (coefs: Int16Array, i: number): void => {
        if (reader.bit() && (coefs[i]! & p1) === 0) coefs[i] = coefs[i]! + (coefs[i]! >= 0 ? p1 : m1);
      };
      decodeBlock = (c, o) => {
        const coefs = c.coefs;
        let k = ss;
        if (eobrun === 0) {
          for (; k <= se; k++) {
            const rs = reader.decode(ac);
            const s = rs & 15;
            let r = rs >> 4;
            let value = 0;
            if (s !== 0) {
              if (s !== 1) fail('corrupt entropy-coded data (a refinement coefficient larger than 1)');
              value = reader.bit() ? p1 : m1;
            } else if (r !== 15) {
              eobrun = (1 << r) + reader.bits(r);
              break;
            }
            // skip r coefficients that are still zero (refining the non-zero ones met on the way), then place the new one
            for (; k <= se; k++) {
              const i = o + ZIGZAG[k]!;
              if (coefs[i] !== 0) refine(coefs, i);
              else if (r === 0) {
                if (value !== 0) coefs[i] = value;
                break;
              } else r--;
            }
          }
        }
        if (eobrun > 0) {
          for (; k <= se; k++) {
            const i = o + ZIGZAG[k]!;
            if (coefs[i] !== 0) refine(coefs, i);
          }
          eobrun--;
        }
      };
    }
  }

  for (const c of comps) c.dcPred = 0;
  const restart = (): void => {
    reader.restart();
    for (const c of comps) c.dcPred = 0;
    eobrun = 0;
  };

  if (ns === 1) {
    // a non-interleaved scan codes the component's own blocks, not whole MCUs (A.2.2)
    const c = comps[0]!;
    const bw = Math.ceil(c.width / 8);
    const bh = Math.ceil(c.height / 8);
    const total = bw * bh;
    for (let n = 0; n < total; n++) {
      if (restartInterval > 0 && n > 0 && n % restartInterval === 0) restart();
      const by = Math.floor(n / bw);
      const bx = n - by * bw;
      decodeBlock(c, (by * c.blocksPerLine + bx) * 64);
    }
  } else {
    const total = frame.mcusPerLine * frame.mcusPerColumn;
    for (let n = 0; n < total; n++) {
      if (restartInterval > 0 && n > 0 && n % restartInterval === 0) restart();
      const my = Math.floor(n / frame.mcusPerLine);
      const mx = n - my * frame.mcusPerLine;
      for (const c of comps) {
        for (let v = 0; v < c.v; v++) {
          for (let h = 0; h < c.h; h++) decodeBlock(c, ((my * c.v + v) * c.blocksPerLine + mx * c.h + h) * 64);
        }
      }
    }
  }
  // the scan's data ends at the next marker that is not a restart marker
  let p = reader.pos;
  while (p + 1 < bytes.length && !(bytes[p] === 0xff && bytes[p + 1] !== 0 && !(bytes[p + 1]! >= 0xd0 && bytes[p + 1]! <= 0xd7))) p++;
  return p + 1 < bytes.length ? p : bytes.length;
}

/** Dequantizes and inverse-transforms every block of a component into a plane of blocksPerLine·8 × blocksPerColumn·8 samples. */
function componentPlane(c: Component, q: Uint16Array): Uint8Array {
  const stride = c.blocksPerLine * 8;
  const plane = new Uint8Array(stride * c.blocksPerColumn * 8);
  const d = new Float64Array(64);
  const tmp = new Float64Array(64);
  const coefs = c.coefs;
  for (let by = 0; by < c.blocksPerColumn; by++) {
    for (let bx = 0; bx < c.blocksPerLine; bx++) {
      const o = (by * c.blocksPerLine + bx) * 64;
      const base = by * 8 * stride + bx * 8;
      let last = 63;
      while (last > 0 && coefs[o + last] === 0) last--;
      if (last === 0) {
        // a flat block (the common case in smooth areas): its DC alone
        const v = clamp(Math.round((coefs[o]! * q[0]!) / 8 + 128));
        for (let y = 0; y < 8; y++) plane.fill(v, base + y * stride, base + y * stride + 8);
        continue;
      }
      for (let i = 0; i < 64; i++) d[i] = coefs[o + i]! * q[i]!;
      // rows: tmp[y][x] = Σu d[y][u] · IDCT[u][x]
      for (let y = 0; y < 8; y++) {
        const r = y * 8;
        for (let x = 0; x < 8; x++) {
          let s = 0;
          for (let u = 0; u < 8; u++) s += d[r + u]! * IDCT[u * 8 + x]!;
          tmp[r + x] = s;
        }
      }
      // columns
      for (let x = 0; x < 8; x++) {
        for (let y = 0; y < 8; y++) {
          let s = 0;
          for (let v = 0; v < 8; v++) s += tmp[v * 8 + x]! * IDCT[v * 8 + y]!;
          plane[base + y * stride + x] = clamp(Math.round(s + 128));
        }
      }
    }
  }
  return plane;
}

const clamp = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/**
 * A component's samples at full image size. Ratios of 2 use libjpeg's "fancy" (triangular)
 * filter with its rounding, so that typical 4:2:0 and 4:2:2 files decode as libjpeg decodes them;
 * neighbours past the component's edge repeat its last sample. Other ratios repeat samples.
 */
function upsample(c: Component, plane: Uint8Array, frame: Frame): Uint8Array {
  const { width, height, hmax, vmax } = frame;
  const stride = c.blocksPerLine * 8;
  const out = new Uint8Array(width * height);
  const sx = hmax / c.h;
  const sy = vmax / c.v;
  const cw = c.width;
  const ch = c.height;
  const at = (x: number, y: number): number => plane[y * stride + x]!;
  if (sx === 2 && sy === 2) {
    for (let y = 0; y < height; y++) {
      const near = y >> 1;
      const far = y & 1 ? Math.min(near + 1, ch - 1) : Math.max(near - 1, 0);
      const colSum = (x: number): number => 3 * at(x, near) + at(x, far);
      for (let x = 0; x < width; x++) {
        const cx = x >> 1;
        const other = x & 1 ? Math.min(cx + 1, cw - 1) : Math.max(cx - 1, 0);
        out[y * width + x] = (3 * colSum(cx) + colSum(other) + (x & 1 ? 7 : 8)) >> 4;
      }
    }
  } else if (sx === 2 && sy === 1) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const cx = x >> 1;
        const other = x & 1 ? Math.min(cx + 1, cw - 1) : Math.max(cx - 1, 0);
        out[y * width + x] = (3 * at(cx, y) + at(other, y) + (x & 1 ? 2 : 1)) >> 2;
      }
    }
  } else if (sx === 1 && sy === 2) {
    for (let y = 0; y < height; y++) {
      const near = y >> 1;
      const far = y & 1 ? Math.min(near + 1, ch - 1) : Math.max(near - 1, 0);
      for (let x = 0; x < width; x++) out[y * width + x] = (3 * at(x, near) + at(x, far) + (y & 1 ? 2 : 1)) >> 2;
    }
  } else {
    for (let y = 0; y < height; y++) {
      const cy = Math.min(Math.floor((y * c.v) / vmax), ch - 1);
      for (let x = 0; x < width; x++) out[y * width + x] = at(Math.min(Math.floor((x * c.h) / hmax), cw - 1), cy);
    }
  }
  return out;
}

/** Whether 3 components are stored as RGB rather than YCbCr: JFIF says YCbCr; else Adobe's flag, else ids 'R','G','B' (as libjpeg guesses). */
function rgbComponents(frame: Frame, adobeTransform: number | undefined, jfif: boolean): boolean {
  if (frame.components.length !== 3 || jfif) return false;
  if (adobeTransform !== undefined) return adobeTransform === 0;
  const [a, b, c] = frame.components.map((x) => x.id);
  return a === 0x52 && b === 0x47 && c === 0x42;
}

function toImage(frame: Frame, quant: Uint16Array[], rgb: boolean): DecodedImage {
  const { width, height, components } = frame;
  const planes = components.map((c) => upsample(c, componentPlane(c, quant[c.tq]!), frame));
  if (planes.length === 1) return { width, height, channels: 1, bitDepth: 8, data: planes[0]! };
  const [p0, p1, p2] = planes as [Uint8Array, Uint8Array, Uint8Array];
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; i < width * height; i++, o += 3) {
    if (rgb) {
      out[o] = p0[i]!;
      out[o + 1] = p1[i]!;
      out[o + 2] = p2[i]!;
      continue;
    }
    // JFIF: R = Y + 1.402 Cr, G = Y − 0.34414 Cb − 0.71414 Cr, B = Y + 1.772 Cb, in 16-bit fixed point
    const y = p0[i]!;
    const cb = p1[i]! - 128;
    const cr = p2[i]! - 128;
    out[o] = clamp(y + ((91881 * cr + 32768) >> 16));
    out[o + 1] = clamp(y + ((-22554 * cb - 46802 * cr + 32768) >> 16));
    out[o + 2] = clamp(y + ((116130 * cb + 32768) >> 16));
  }
  return { width, height, channels: 3, bitDepth: 8, data: out };
}
