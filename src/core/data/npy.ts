import { DatasetError, type ImageFile } from './image-set';
import type { DecodedImage } from './png';

/**
 * NumPy .npy arrays as image data: a float array N×C×H×W of pixels in [0, 1] (the same scale as
 * decoded images, before mean/std), and integer label arrays. Version 1–3 headers, little-endian
 * float32/float64 and integer types, C order.
 */
export interface NpyArray {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

export function isNpy(bytes: Uint8Array): boolean {
  return MAGIC.every((b, i) => bytes[i] === b);
}

export function parseNpy(bytes: Uint8Array, name: string): NpyArray {
  if (!isNpy(bytes)) throw new DatasetError(`${name}: not a .npy file`);
  const major = bytes[6]!;
  if (major < 1 || major > 3) throw new DatasetError(`${name}: .npy format version ${major} is not supported (1 to 3 are)`);
  const start = major === 1 ? 10 : 12;
  if (bytes.length < start) throw new DatasetError(`${name}: the .npy header is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (start + headerLen > bytes.length) throw new DatasetError(`${name}: the .npy header is truncated`);
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new DatasetError(`${name}: the .npy header cannot be read`);
  if (fortran === 'True') throw new DatasetError(`${name}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new DatasetError(`${name}: bad shape (${shapeText})`);
  const n = shape.reduce((a, b) => a * b, 1);
  const body = bytes.subarray(start + headerLen);
  const types: Record<string, [number, (v: DataView, o: number) => number]> = {
    '<f4': [4, (v, o) => v.getFloat32(o, true)],
    '<f8': [8, (v, o) => v.getFloat64(o, true)],
    '<i8': [8, (v, o) => Number(v.getBigInt64(o, true))],
    '<i4': [4, (v, o) => v.getInt32(o, true)],
    '<i2': [2, (v, o) => v.getInt16(o, true)],
    '|u1': [1, (v, o) => v.getUint8(o)],
    '|i1': [1, (v, o) => v.getInt8(o)],
  };
  const t = types[descr];
  if (!t) throw new DatasetError(`${name}: dtype ${descr} is not supported (float32, float64 or integers, little-endian)`);
  if (body.length < n * t[0]) throw new DatasetError(`${name}: holds ${body.length} bytes of data, the header promises ${n * t[0]}`);
  const v = new DataView(body.buffer, body.byteOffset, n * t[0]);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = t[1](v, i * t[0]);
  return { shape, data };
}

/** A float32 .npy file (version 1.0), e.g. one sample of a larger array. */
export function writeNpy(shape: readonly number[], data: Float32Array): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

/** One sample (C×H×W, pixels in [0, 1]) as an image the preprocessing reads. */
export function decodeNpySample(bytes: Uint8Array, name: string): DecodedImage {
  const { shape, data } = parseNpy(bytes, name);
  if (shape.length !== 3) throw new DatasetError(`${name}: a sample must be C×H×W, got (${shape.join(', ')})`);
  const [c, h, w] = shape as [number, number, number];
  if (c !== 1 && c !== 3) throw new DatasetError(`${name}: ${c} channels; images have 1 or 3`);
  // a side of 0 would make the resize read outside the image: NaN pixels, no error
  if (h < 1 || w < 1) throw new DatasetError(`${name}: an empty image (${h}×${w})`);
  // CHW → HWC, the layout decoded images have
  const hwc = new Float32Array(data.length);
  for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) hwc[p * c + ch] = data[ch * h * w + p]!;
  return { width: w, height: h, channels: c, bitDepth: 32, data: hwc };
}

/**
 * Splits an N×C×H×W array into one-sample files, named so that the folder rules apply: without
 * labels a flat set (calibration); with labels one folder per class, named by `classNames` (in
 * model-output order) or by the zero-padded class index, which sorts in that order.
 */
export function npySamples(array: NpyArray, name: string, labels?: NpyArray, classNames?: readonly string[]): ImageFile[] {
  if (array.shape.length !== 4) throw new DatasetError(`${name}: expected an N×C×H×W array, got shape (${array.shape.join(', ')})`);
  const [n, c, h, w] = array.shape as [number, number, number, number];
  if (c * h * w === 0) throw new DatasetError(`${name}: samples of shape (${c}, ${h}, ${w}) hold no pixels`);
  if (labels && labels.data.length !== n) throw new DatasetError(`${name}: ${n} samples but ${labels.data.length} labels`);
  const per = c * h * w;
  const stem = name.replace(/\.npy$/i, '');
  return Array.from({ length: n }, (_, i) => {
    const bytes = writeNpy([c, h, w], array.data.subarray(i * per, (i + 1) * per));
    if (!labels) return { path: `${stem}/${String(i).padStart(6, '0')}.npy`, bytes };
    const k = labels.data[i]!;
    if (!Number.isInteger(k) || k < 0 || (classNames && k >= classNames.length)) throw new DatasetError(`${name}: label ${k} of sample ${i} is not a class index${classNames ? ` below ${classNames.length}` : ''}`);
    const folder = classNames ? classNames[k]! : String(k).padStart(4, '0');
    return { path: `${stem}/${folder}/${String(i).padStart(6, '0')}.npy`, bytes };
  });
}
