import { describe, expect, it } from 'vitest';
import { quantizeTensor, weightParams } from './quantizer';
import { weightHistogram } from './weight-histogram';

describe('weight histogram', () => {
  it('puts every weight in step units of its own channel, and counts codes per grid point', () => {
    // two channels with different scales: in step units they cover the same grid
    const w = Float32Array.of(-0.9, 0, 0.5, 1, -9, 0, 5, 10);
    const p = weightParams(w, [2, 4], { bits: 2, symmetric: true, granularity: { kind: 'channel', axis: 0 } }, 'minmax');
    const codes = quantizeTensor(w, [2, 4], p);
    const h = weightHistogram(w, [2, 4], codes, p);
    // a 2-bit grid has four levels
    expect([h.qmin, h.qmax]).toEqual([-2, 1]);
    expect(h.codes.reduce((a, b) => a + b, 0)).toBe(8);
    expect(h.float.reduce((a, b) => a + b, 0)).toBe(8);
    // both channels are identical up to scale: each code count is even
    expect(h.codes).toEqual([0, 2, 2, 4]);
    // the float histogram spans [qmin − 1, qmax + 1]: ±1 steps land at the grid's ends, not in the outer margins
    expect(h.float[0]).toBe(0);
    expect(h.float.at(-1)).toBe(0);
  });
});
