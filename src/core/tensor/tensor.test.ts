import { describe, expect, it } from 'vitest';
import { size, tensor, zerosLike } from './tensor';

describe('tensor', () => {
  it('wraps data without copying and checks its length', () => {
    const data = Float32Array.of(1, 2, 3, 4, 5, 6);
    const t = tensor([2, 3], data);
    expect(t.data).toBe(data);
    expect(t.shape).toEqual([2, 3]);
    expect(() => tensor([2, 2], data)).toThrow(/needs 4 values/);
  });

  it('allocates zeros; a scalar has size 1', () => {
    expect(size([])).toBe(1);
    expect(size([2, 0, 3])).toBe(0);
    expect(Array.from(tensor([2, 2]).data)).toEqual([0, 0, 0, 0]);
    const z = zerosLike(tensor([3], Float32Array.of(1, 2, 3)));
    expect(z.shape).toEqual([3]);
    expect(Array.from(z.data)).toEqual([0, 0, 0]);
  });
});
