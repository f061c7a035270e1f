import { describe, expect, it } from 'vitest';
import { dequantizeTensor, intRange, lpSearchPerChannelSymmetric, minMaxPerChannelSymmetric, minMaxPerTensor, quantizeTensor, roundHalfEven } from './quantizer';
import { randn, rng } from '../random';

describe('quantizer', () => {
  it('rounds half to even, as ONNX QuantizeLinear does', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, 3]);
  });

  it('uses ONNX Runtime’s ranges: symmetric int8 is [−127, 127], uint8 [0, 255], int4 symmetric [−7, 7]', () => {
    expect(intRange(8, true, true)).toEqual({ qmin: -127, qmax: 127 });
    expect(intRange(8, false, false)).toEqual({ qmin: 0, qmax: 255 });
    expect(intRange(4, true, true)).toEqual({ qmin: -7, qmax: 7 });
    expect(intRange(2, true, false)).toEqual({ qmin: -2, qmax: 1 });
  });

  it('per-channel symmetric min–max maps each channel’s largest magnitude to ±qmax', () => {
    const w = Float32Array.from([0.5, -1, 0.25, 0.1, 0.2, -0.05]);
    const p = minMaxPerChannelSymmetric(w, [2, 3], 0, 8);
    expect(p.scale[0]).toBeCloseTo(1 / 127, 7);
    expect(p.scale[1]).toBeCloseTo(0.2 / 127, 7);
    const q = quantizeTensor(w, [2, 3], p);
    expect(Array.from(q)).toEqual([64, -127, 32, 64, 127, -32]);
    const back = dequantizeTensor(q, [2, 3], p);
    for (let i = 0; i < w.length; i++) expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(p.scale[i < 3 ? 0 : 1]! / 2 + 1e-9);
  });

  it('channels on axis 1 (a MatMul weight) are quantized column by column', () => {
    const w = Float32Array.from([1, 10, -1, -10]); // [2, 2], columns [1, -1] and [10, -10]
    const p = minMaxPerChannelSymmetric(w, [2, 2], 1, 8);
    expect(Array.from(quantizeTensor(w, [2, 2], p))).toEqual([127, 127, -127, -127]);
  });

  it('per-tensor asymmetric activations include zero exactly and cover the range', () => {
    const p = minMaxPerTensor(0.5, 6, 8, false, false);
    expect(p.zeroPoint[0]).toBe(0);
    expect(p.scale[0]).toBeCloseTo(6 / 255, 7);
    const q = minMaxPerTensor(-1, 3, 8, false, false);
    expect(q.zeroPoint[0]).toBe(Math.round(255 / 4));
    expect(Array.from(quantizeTensor(Float32Array.from([0, 3, -1, 5]), [4], q))).toEqual([64, 255, 0, 255]);
  });

  it('never produces a zero step on an all-zero channel', () => {
    const p = minMaxPerChannelSymmetric(new Float32Array(4), [2, 2], 0, 4);
    expect(p.scale.every((s) => s > 0)).toBe(true);
    expect(Array.from(quantizeTensor(new Float32Array(4), [2, 2], p))).toEqual([0, 0, 0, 0]);
  });

  it('the Lp search (BRECQ, p = 2.4) clips outliers: a smaller step and a lower 2.4-norm error than min–max', () => {
    const w = randn(2 * 256, rng(4), 0.1);
    w[3] = 1.5; // one outlier in channel 0
    const lpErr = (p: ReturnType<typeof minMaxPerChannelSymmetric>, c: number) => {
      const q = dequantizeTensor(quantizeTensor(w, [2, 256], p), [2, 256], p);
      let e = 0;
      for (let i = c * 256; i < (c + 1) * 256; i++) e += Math.abs(q[i]! - w[i]!) ** 2.4;
      return e;
    };
    const mm = minMaxPerChannelSymmetric(w, [2, 256], 0, 3);
    const lp = lpSearchPerChannelSymmetric(w, [2, 256], 0, 3);
    expect(lp.scale[0]!).toBeLessThan(mm.scale[0]!);
    expect(lp.scale[0]!).toBeGreaterThanOrEqual(mm.scale[0]! * 0.21 - 1e-9); // 80 candidates down to 21% of the range
    for (const c of [0, 1]) expect(lpErr(lp, c)).toBeLessThanOrEqual(lpErr(mm, c));
    expect(lpErr(lp, 0)).toBeLessThan(lpErr(mm, 0));
  });
});
