import type { ImageBatches } from '../data/batches';
import { randn, rng } from '../random';

/**
 * Calibration batches of seeded random images, served as `ImageBatches` serves decoded files (16 a
 * batch, with their first row), for the methods' and the search's tests: they read batches, not files.
 */
export function syntheticBatches(count: number, shape: readonly number[], seed: number): ImageBatches {
  const per = shape.reduce((a, b) => a * b, 1);
  const all = randn(count * per, rng(seed));
  const bs = 16;
  return {
    count,
    batches: Math.ceil(count / bs),
    batch: async (b: number) => {
      const n = Math.min(bs, count - b * bs);
      return { data: all.slice(b * bs * per, (b * bs + n) * per), shape: [n, ...shape], start: b * bs };
    },
  } as unknown as ImageBatches;
}
