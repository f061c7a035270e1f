import { describe, expect, it } from 'vitest';
import { dequantizeTensor, quantizeTensor } from '../../../quant/quantizer';
import { randn, rng } from '../../../random';
import { tensor } from '../../../tensor/tensor';
import { adaroundForward, adaroundHard, adaroundInit, adaroundRegBackward, adaroundRegForward, rectifiedSigmoid } from './adaround';
import { fakeQuantBackward, fakeQuantForward } from './fake-quant';
import { lpLossForward, mseBackward, mseForward } from './losses';
import { nd } from './nd';

/** Hand-worked values for the parts finite differences cannot judge: STE masks, clamp bounds, ties. */

describe('fakeQuant', () => {
  // s = 0.5, z = 2, 3-bit grid [0, 7]: representable values −1 … 2.5
  const grid = { scale: Float32Array.of(0.5), zero: [2], qmin: 0, qmax: 7 };
  const x = tensor([6], Float32Array.of(-2, 0.3, 2.5, 2.8, 0.25, 0.75));

  it('quantizes, clamps and rounds ties to even', () => {
    expect(Array.from(fakeQuantForward(x, grid).data)).toEqual([-1, 0.5, 2.5, 2.5, 0, 1]);
  });

  it('passes dy where the code is inside [qmin, qmax], bounds included, and gives LSQ step gradients', () => {
    const g = fakeQuantBackward(x, grid, tensor([6], new Float32Array(6).fill(1)));
    expect(Array.from(g.dx.data)).toEqual([0, 1, 1, 0, 1, 1]);
    // per element: qmin − z, round(0.6) − 0.6, 0 (on qmax), qmax − z, round(0.5) − 0.5, round(1.5) − 1.5
    expect(g.dscale[0]).toBeCloseTo(-2 + 0.4 + 0 + 5 - 0.5 + 0.5, 6);
  });

  it('agrees with the studio quantizer per channel (axis 0)', () => {
    const w = tensor([3, 2, 2, 2], randn(24, rng(3)));
    const params = { bits: 4 as const, signed: true, symmetric: false, granularity: { kind: 'channel' as const, axis: 0 }, scale: Float32Array.of(0.1, 0.25, 0.4), zeroPoint: Int32Array.of(0, 2, -1) };
    const expected = dequantizeTensor(quantizeTensor(w.data, w.shape, params), w.shape, params);
    const ours = fakeQuantForward(w, { scale: params.scale, zero: params.zeroPoint, qmin: -8, qmax: 7 });
    expect(Array.from(ours.data)).toEqual(Array.from(expected));
  });

  it('agrees with the studio quantizer per group, a shorter last group included', () => {
    // rows of 2·2·3 = 12 elements in groups of 5: 5, 5 and 2
    const w = tensor([2, 2, 2, 3], randn(24, rng(4)));
    const scale = Float32Array.of(0.1, 0.3, 0.05, 0.2, 0.15, 0.4);
    const zeroPoint = Int32Array.of(1, 0, -2, 3, 0, -1);
    const params = { bits: 4 as const, signed: true, symmetric: false, granularity: { kind: 'group' as const, axis: 0, size: 5 }, scale, zeroPoint };
    const expected = dequantizeTensor(quantizeTensor(w.data, w.shape, params), w.shape, params);
    const ours = fakeQuantForward(w, { scale, zero: zeroPoint, qmin: -8, qmax: 7, group: 5 });
    expect(Array.from(ours.data)).toEqual(Array.from(expected));
    // element 11 (row 0, last group) uses scale 2: a different scale would change it
    expect(expected[11]).toBeCloseTo(0.05 * (Math.max(-8, Math.min(7, Math.round(w.data[11]! / 0.05) - 2)) + 2), 6);
  });

  it('rejects a scale count that matches no axis', () => {
    expect(() => fakeQuantForward(tensor([2, 3]), { scale: Float32Array.of(1, 1, 1), zero: [0, 0, 0], qmin: 0, qmax: 3 })).toThrow(/axis 0/);
  });
});

describe('AdaRound', () => {
  const rand = rng(11);
  const w = nd([4, 6], Float64Array.from(randn(24, rand, 0.5)));
  const grid = { scale: Float64Array.of(0.1, 0.2, 0.15, 0.3), zero: [8, 8, 7, 9], qmin: 0, qmax: 15 };

  it('h(V) reaches exactly 0 and 1 and is 0.5 at V = 0', () => {
    expect(rectifiedSigmoid(-10)).toBe(0);
    expect(rectifiedSigmoid(10)).toBe(1);
    expect(rectifiedSigmoid(0)).toBeCloseTo(0.5, 15);
  });

  it('starts from the float weight (where it is inside the grid)', () => {
    const v = adaroundInit(w, grid);
    const soft = adaroundForward(w, v, grid);
    const hi = (c: number) => grid.scale[c]! * (grid.qmax - grid.zero[c]!);
    const lo = (c: number) => grid.scale[c]! * (grid.qmin - grid.zero[c]!);
    for (let i = 0; i < 24; i++) {
      const c = Math.floor(i / 6);
      const expected = Math.min(hi(c), Math.max(lo(c), w.data[i]!));
      expect(soft.data[i]).toBeCloseTo(expected, 12);
    }
  });

  it('rounds hard to floor or floor + 1 by the sign of V', () => {
    const v = nd([4, 6], Float64Array.from({ length: 24 }, (_, i) => (i % 2 ? 0.3 : -0.3)));
    const hard = adaroundHard(w, v, grid);
    for (let i = 0; i < 24; i++) {
      const c = Math.floor(i / 6);
      const s = grid.scale[c]!;
      const q = Math.min(grid.qmax, Math.max(grid.qmin, Math.floor(w.data[i]! / s) + (i % 2) + grid.zero[c]!));
      expect(hard.data[i]).toBeCloseTo(s * (q - grid.zero[c]!), 12);
    }
  });

  it('the regulariser is a sum: n at h = 0.5, 0 once every h is 0 or 1', () => {
    expect(adaroundRegForward(nd([5], new Float64Array(5)), 20)).toBe(5);
    expect(adaroundRegForward(nd([2], Float64Array.of(-8, 8)), 2)).toBe(0);
    // λ enters as the upstream gradient
    const v = nd([3], Float64Array.of(-0.5, 0.2, 1));
    const g1 = adaroundRegBackward(v, 4);
    const g2 = adaroundRegBackward(v, 4, 0.01);
    expect(g2.data[0]).toBeCloseTo(0.01 * g1.data[0]!, 15);
  });
});

describe('losses', () => {
  const p = nd([2, 2], Float64Array.of(1, 2, 0, -1));
  const t = nd([2, 2], Float64Array.of(0, 0, 0, 1));
  it('mse and lp are means over all elements', () => {
    expect(mseForward(p, t)).toBeCloseTo((1 + 4 + 0 + 4) / 4, 15);
    expect(lpLossForward(p, t, 2.4)).toBeCloseTo((1 + 2 ** 2.4 + 0 + 2 ** 2.4) / 4, 12);
    expect(Array.from(mseBackward(p, t).data)).toEqual([0.5, 1, 0, -1]);
  });
});
