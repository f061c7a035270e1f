import { rng } from '../random';

/**
 * A seeded random subset of `n` items, in their original order: a smaller calibration set that
 * still spans every class folder, and is the same for the same seed.
 */
export function sampleImages<T>(items: readonly T[], n: number, seed: number): T[] {
  if (n >= items.length) return [...items];
  const rand = rng(seed + 0x5eed);
  const idx = items.map((_, i) => i);
  // partial Fisher–Yates: the first n slots end up a uniform sample
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => items[i]!);
}
