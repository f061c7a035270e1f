import { describe, expect, it } from 'vitest';
import { activationQuantParams, chooseStep, dequantizeTensor, intRange, minMaxPerTensor, paramSlices, percentileOf, quantizeTensor, roundHalfEven, weightParams, type Bits, type QuantGranularity, type QuantParams, type StepInit } from './quantizer';
import { randn, rng } from '../random';

const channel = (axis: number): QuantGranularity => ({ kind: 'channel', axis });
const group = (axis: number, size: number): QuantGranularity => ({ kind: 'group', axis, size });
const sym = (w: Float32Array, dims: number[], g: QuantGranularity, bits: Bits, init: StepInit = 'minmax') => weightParams(w, dims, { bits, symmetric: true, granularity: g }, init);

function sqErr(w: Float32Array, dims: number[], p: QuantParams, from = 0, to = w.length): number {
  const back = dequantizeTensor(quantizeTensor(w, dims, p), dims, p);
  let e = 0;
  for (let i = from; i < to; i++) e += (back[i]! - w[i]!) ** 2;
  return e;
}

describe('quantizer', () => {
  it('rounds half to even, as ONNX QuantizeLinear does', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, 3]);
  });

  it('gives every grid 2^b levels, except symmetric int8, which is ONNX Runtime’s [−127, 127]', () => {
    expect(intRange(8, true, true)).toEqual({ qmin: -127, qmax: 127 });
    expect(intRange(8, false, false)).toEqual({ qmin: 0, qmax: 255 });
    expect(intRange(4, true, true)).toEqual({ qmin: -8, qmax: 7 });
    expect(intRange(3, true, true)).toEqual({ qmin: -4, qmax: 3 });
    expect(intRange(2, true, true)).toEqual({ qmin: -2, qmax: 1 });
    expect(intRange(2, true, false)).toEqual({ qmin: -2, qmax: 1 });
    expect(intRange(2, false, false)).toEqual({ qmin: 0, qmax: 3 });
    for (const bits of [2, 3, 4, 5, 6, 7] as const) {
      for (const [signed, symmetric] of [[true, true], [true, false], [false, false]] as const) {
        const r = intRange(bits, signed, symmetric);
        expect(r.qmax - r.qmin + 1).toBe(2 ** bits);
      }
    }
  });

  it('per-channel symmetric min–max maps each channel’s largest magnitude to ±qmax', () => {
    const w = Float32Array.from([0.5, -1, 0.25, 0.1, 0.2, -0.05]);
    const p = sym(w, [2, 3], channel(0), 8);
    expect(p.scale[0]).toBeCloseTo(1 / 127, 7);
    expect(p.scale[1]).toBeCloseTo(0.2 / 127, 7);
    const q = quantizeTensor(w, [2, 3], p);
    expect(Array.from(q)).toEqual([64, -127, 32, 64, 127, -32]);
    const back = dequantizeTensor(q, [2, 3], p);
    for (let i = 0; i < w.length; i++) expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(p.scale[i < 3 ? 0 : 1]! / 2 + 1e-9);
  });

  it('channels on axis 1 (a MatMul weight) are quantized column by column', () => {
    const w = Float32Array.from([1, 10, -1, -10]); // [2, 2], columns [1, -1] and [10, -10]
    const p = sym(w, [2, 2], channel(1), 8);
    expect(Array.from(quantizeTensor(w, [2, 2], p))).toEqual([127, 127, -127, -127]);
  });

  it('groups run along each channel’s row: OIHW rows flattened, MatMul [K, N] columns, a shorter last group', () => {
    // Conv [2, 2, 1, 3]: rows of 6 in groups of 4 → 4 + 2 per channel, channel-major
    const s = paramSlices([2, 2, 1, 3], group(0, 4));
    expect(s.count).toBe(4);
    expect(Array.from(s.offsets)).toEqual([0, 4, 6, 10, 12]);
    expect(Array.from(s.members)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // MatMul [K = 5, N = 2], channels on axis 1: column n is elements n, n + 2, …; groups of 2 along K
    const m = paramSlices([5, 2], group(1, 2));
    expect(Array.from(m.offsets)).toEqual([0, 2, 4, 5, 7, 9, 10]);
    expect(Array.from(m.members)).toEqual([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]);
    // hand-computed symmetric 8-bit scales per group of column 0 = [1, −3 | 2, 0.5 | 4]
    const w = Float32Array.of(1, 9, -3, 9, 2, 9, 0.5, 9, 4, 9);
    const p = sym(w, [5, 2], group(1, 2), 8);
    expect(Array.from(p.scale.subarray(0, 3))).toEqual([3, 2, 4].map((v) => Math.fround(v / 127)));
  });

  for (const symmetric of [true, false]) {
    it(`per-group ${symmetric ? 'symmetric' : 'asymmetric'} round trip, 2–8 bits: codes on the grid, every error within half of its own group’s step`, () => {
      const dims = [3, 4, 3, 3]; // rows of 36: groups of 32 and 4
      const w = randn(108, rng(11), 0.2);
      for (const bits of [2, 3, 4, 5, 6, 7, 8] as Bits[]) {
        const p = weightParams(w, dims, { bits, symmetric, granularity: group(0, 32) }, 'minmax');
        expect(p.scale.length).toBe(6);
        const { qmin, qmax } = intRange(bits, p.signed, symmetric);
        const q = quantizeTensor(w, dims, p);
        for (const c of q) expect(c >= qmin && c <= qmax).toBe(true);
        const back = dequantizeTensor(q, dims, p);
        for (let i = 0; i < w.length; i++) {
          const k = Math.floor(i / 36) * 2 + (i % 36 < 32 ? 0 : 1);
          expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(p.scale[k]! / 2 + 1e-7);
        }
      }
    });
  }

  it('per-group error is below per-channel error on weights with outlier groups', () => {
    const dims = [4, 256];
    const w = randn(1024, rng(12), 0.05);
    for (let c = 0; c < 4; c++) for (let i = 0; i < 32; i++) w[c * 256 + 64 + i] = w[c * 256 + 64 + i]! * 20; // one loud group per channel
    for (const bits of [2, 3, 4, 8] as Bits[]) {
      for (const init of ['minmax', 'lp'] as StepInit[]) {
        const perChannel = sym(w, dims, channel(0), bits, init);
        const perGroup = sym(w, dims, group(0, 32), bits, init);
        for (let c = 0; c < 4; c++) expect(sqErr(w, dims, perGroup, c * 256, (c + 1) * 256)).toBeLessThan(sqErr(w, dims, perChannel, c * 256, (c + 1) * 256));
      }
    }
  });

  it('per-tensor asymmetric activations include zero exactly and cover the range', () => {
    const p = minMaxPerTensor(0.5, 6, 8, false, false);
    expect(p.zeroPoint[0]).toBe(0);
    expect(p.scale[0]).toBeCloseTo(6 / 255, 7);
    const q = minMaxPerTensor(-1, 3, 8, false, false);
    expect(q.zeroPoint[0]).toBe(Math.round(255 / 4));
    expect(Array.from(quantizeTensor(Float32Array.from([0, 3, -1, 5]), [4], q))).toEqual([64, 255, 0, 255]);
  });

  it('never produces a zero step on an all-zero channel or group', () => {
    for (const g of [channel(0), group(0, 32)]) {
      const p = sym(new Float32Array(4), [2, 2], g, 4);
      expect(p.scale.every((s) => s > 0)).toBe(true);
      expect(Array.from(quantizeTensor(new Float32Array(4), [2, 2], p))).toEqual([0, 0, 0, 0]);
    }
  });

  it('the Lp search (BRECQ, p = 2.4) clips outliers: a smaller step and a lower 2.4-norm error than min–max', () => {
    const w = randn(2 * 256, rng(4), 0.1);
    w[3] = 1.5; // one outlier in channel 0
    const lpErr = (p: QuantParams, c: number) => {
      const q = dequantizeTensor(quantizeTensor(w, [2, 256], p), [2, 256], p);
      let e = 0;
      for (let i = c * 256; i < (c + 1) * 256; i++) e += Math.abs(q[i]! - w[i]!) ** 2.4;
      return e;
    };
    const mm = sym(w, [2, 256], channel(0), 3);
    const lp = sym(w, [2, 256], channel(0), 3, 'lp');
    expect(lp.scale[0]!).toBeLessThan(mm.scale[0]!);
    expect(lp.scale[0]!).toBeGreaterThanOrEqual(mm.scale[0]! * 0.21 - 1e-9); // 80 candidates down to 21% of the range
    for (const c of [0, 1]) expect(lpErr(lp, c)).toBeLessThanOrEqual(lpErr(mm, c));
    expect(lpErr(lp, 0)).toBeLessThan(lpErr(mm, 0));
  });

  it('percentiles interpolate between order statistics as NumPy does', () => {
    expect(percentileOf([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentileOf([0, 10], 99.99)).toBeCloseTo(9.999, 9);
    expect(percentileOf([7], 99.99)).toBe(7);
  });

  it('percentile init: the 99.99th percentile of |x| (symmetric), the 0.01th and 99.99th of x (asymmetric)', () => {
    const x = Float32Array.from({ length: 10 }, (_, i) => i - 5); // −5 … 4
    // |x| sorted = 0,1,1,2,2,3,3,4,4,5: position 0.9999·9 = 8.9991 → 4 + 0.9991
    const s = chooseStep(x, -5, 4, intRange(8, true, true), true, true, 'percentile');
    expect(s.scale).toBeCloseTo(4.9991 / 127, 9);
    expect(s.zero).toBe(0);
    // x sorted: 0.01th at position 0.0009 → −4.9991; 99.99th at 8.9991 → 3.9991
    const a = activationQuantParams(x, -5, 4, 8, 'percentile');
    const step = (3.9991 + 4.9991) / 255;
    expect(a.scale[0]).toBeCloseTo(step, 7);
    expect(a.zeroPoint[0]).toBe(Math.round(4.9991 / step));
  });

  it('QDrop’s MSE init: the 2.4-norm argmin over thresholds (i/100)·max(|min|, max), or over 100 lengths × every zero point when two-sided asymmetric', () => {
    const x = randn(400, rng(21), 1);
    for (let i = 0; i < 4; i++) x[i] = 8 + i; // a long right tail
    const score = (v: Float32Array, s: number, z: number, qmin: number, qmax: number) => v.reduce((a, t) => a + Math.abs(t - s * (Math.min(qmax, Math.max(qmin, roundHalfEven(t / s) + z)) - z)) ** 2.4, 0);
    let min = 0;
    let max = 0;
    for (const v of x) [min, max] = [Math.min(min, v), Math.max(max, v)];
    // symmetric int4: 100 thresholds
    const sy = chooseStep(x, min, max, intRange(4, true, true), true, true, 'mse');
    let best = { e: Infinity, s: 0 };
    for (let i = 1; i <= 100; i++) {
      const s = ((i / 100) * Math.max(-min, max)) / 7.5;
      const e = score(x, s, 0, -8, 7);
      if (e < best.e) best = { e, s };
    }
    expect(sy.scale).toBeCloseTo(best.s, 6);
    expect(sy.scale).toBeLessThan(Math.max(-min, max) / 7.5); // it clips the tail
    // one-sided (post-ReLU) unsigned 3-bit: thresholds over [0, t]
    const relu = Float32Array.from(x, (v) => Math.max(0, v));
    const one = chooseStep(relu, 0, max, intRange(3, false, false), false, false, 'mse');
    best = { e: Infinity, s: 0 };
    for (let i = 1; i <= 100; i++) {
      const e = score(relu, ((i / 100) * max) / 7, 0, 0, 7);
      if (e < best.e) best = { e, s: ((i / 100) * max) / 7 };
    }
    expect(one.zero).toBe(0);
    expect(one.scale).toBeCloseTo(best.s, 6);
    // two-sided asymmetric unsigned 2- and 4-bit: 100 lengths × every zero point
    for (const bits of [2, 4] as Bits[]) {
      const levels = 2 ** bits - 1;
      const two = chooseStep(x, min, max, intRange(bits, false, false), false, false, 'mse');
      let b2 = { e: Infinity, s: 0, z: 0 };
      for (let i = 1; i <= 100; i++) {
        for (let z = 0; z <= levels; z++) {
          const s = ((i / 100) * (max - min)) / levels;
          const e = score(x, s, z, 0, levels);
          if (e < b2.e) b2 = { e, s, z };
        }
      }
      expect(two.scale).toBeCloseTo(b2.s, 6);
      expect(two.zero).toBe(b2.z);
    }
  });
});
