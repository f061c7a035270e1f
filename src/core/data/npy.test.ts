import { describe, expect, it } from 'vitest';
import { decodeNpySample, npySamples, parseNpy, writeNpy } from './npy';
import { DatasetError, labelImages } from './image-set';

describe('.npy arrays', () => {
  it('round-trips float32 and splits an N×C×H×W array into labelled samples in class folders', () => {
    const data = Float32Array.from({ length: 3 * 3 * 2 * 2 }, (_, i) => i / 36);
    const arr = parseNpy(writeNpy([3, 3, 2, 2], data), 'x.npy');
    expect(arr.shape).toEqual([3, 3, 2, 2]);
    expect(Array.from(arr.data)).toEqual(Array.from(data));
    const files = npySamples(arr, 'x.npy', { shape: [3], data: Float32Array.of(2, 0, 2) });
    expect(files.map((f) => f.path)).toEqual(['x/0002/000000.npy', 'x/0000/000001.npy', 'x/0002/000002.npy']);
    const set = labelImages(files.map((f) => f.path));
    expect(new Map(set.images.map((i) => [i.path, i.label]))).toEqual(new Map([['x/0002/000000.npy', 1], ['x/0000/000001.npy', 0], ['x/0002/000002.npy', 1]]));
    // CHW → HWC for the preprocessing
    const img = decodeNpySample(files[1]!.bytes, files[1]!.path);
    expect([img.width, img.height, img.channels, img.bitDepth]).toEqual([2, 2, 3, 32]);
    expect(Array.from(img.data.subarray(0, 3))).toEqual([data[12]!, data[16]!, data[20]!]);
  });

  it('reads float64 and integer arrays, and refuses what it cannot read with a reason', () => {
    const header = (descr: string, shape: string, fortran = 'False') => {
      let h = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': (${shape}), }`;
      h += ' '.repeat(63 - ((10 + h.length) % 64)) + '\n';
      return h;
    };
    const file = (h: string, body: Uint8Array) => {
      const out = new Uint8Array(10 + h.length + body.length);
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      new DataView(out.buffer).setUint16(8, h.length, true);
      out.set(new TextEncoder().encode(h), 10);
      out.set(body, 10 + h.length);
      return out;
    };
    const f64 = new Uint8Array(Float64Array.of(0.25, -1).buffer);
    expect(Array.from(parseNpy(file(header('<f8', '2,'), f64), 'a').data)).toEqual([0.25, -1]);
    const i64 = new Uint8Array(BigInt64Array.of(3n, 7n).buffer);
    expect(Array.from(parseNpy(file(header('<i8', '2,'), i64), 'b').data)).toEqual([3, 7]);
    expect(() => parseNpy(file(header('>f4', '2,'), f64), 'c')).toThrow(/dtype >f4 is not supported/);
    expect(() => parseNpy(file(header('<f4', '2, 2', 'True'), f64), 'd')).toThrow(/Fortran-ordered/);
    expect(() => parseNpy(file(header('<f8', '4,'), f64), 'e')).toThrow(/holds 16 bytes of data, the header promises 32/);
    expect(() => parseNpy(new Uint8Array([1, 2, 3]), 'f')).toThrow(DatasetError);
    expect(() => npySamples({ shape: [2, 2], data: new Float32Array(4) }, 'g.npy')).toThrow(/expected an N×C×H×W array/);
  });
});
