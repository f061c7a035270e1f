import { describe, expect, it } from 'vitest';
import { Adam } from './adam';

describe('Adam', () => {
  it('takes a first step of exactly lr·sign(g), as bias correction makes it', () => {
    const p = Float32Array.of(1, -2, 3);
    new Adam(p, { lr: 0.1 }).step([0.5, -4, 1e-3]);
    expect(Array.from(p).map((x) => Number(x.toFixed(5)))).toEqual([0.9, -1.9, 2.9]);
  });

  it('minimises a quadratic', () => {
    const p = Float32Array.of(5, -3);
    const opt = new Adam(p, { lr: 0.05 });
    for (let i = 0; i < 2000; i++) opt.step([2 * (p[0]! - 1), 2 * (p[1]! + 2)]);
    expect(p[0]).toBeCloseTo(1, 2);
    expect(p[1]).toBeCloseTo(-2, 2);
  });
});
