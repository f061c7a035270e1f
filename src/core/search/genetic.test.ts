import { describe, expect, it } from 'vitest';
import { rng } from '../random';
import type { Bits } from '../quant/quantizer';
import { BudgetError, geneticSearch, layerBitsOf, mixedPrecisionSpace, nonDominated, paretoFront, type MixedPrecisionSpace } from './genetic';
import { layerSizeBytes } from './cost';
import type { SensitivityTable } from './sensitivity';

/**
 * A synthetic table: `n` layers in blocks of `perBlock`, losses falling with bits (random
 * magnitudes), random same-block pair terms at 2 bits, and size costs from random layer shapes.
 */
function problem(n: number, seed: number, perBlock = 3): { table: SensitivityTable; cost: number[][] } {
  const rand = rng(seed);
  const bits: Bits[] = [2, 4, 8];
  const layers = Array.from({ length: n }, (_, i) => {
    const s = 0.01 + rand();
    const loss = [s, s * (0.02 + 0.1 * rand()), s * 0.001];
    return { name: `l${i}`, block: `b${Math.floor(i / perBlock)}`, loss, delta: loss.map((v) => v - 0.001) };
  });
  const blocks = [...new Set(layers.map((l) => l.block))].map((id) => ({ id, layers: layers.filter((l) => l.block === id).map((l) => l.name), base: 0.001 }));
  const pairs = blocks.flatMap((b) =>
    b.layers.flatMap((a, i) => b.layers.slice(i + 1).map((c) => ({ block: b.id, a, b: c, bits: 2 as Bits, loss: 0, extra: (rand() - 0.3) * 0.5 }))),
  );
  const table: SensitivityTable = {
    kind: 'lowbit-sensitivity',
    version: 1,
    mode: 'cheap',
    label: 'synthetic',
    metric: 'block-output relative error',
    bits,
    pairBits: 2,
    iters: null,
    scale: 'lp',
    images: 0,
    seed,
    blocks,
    layers,
    pairs,
    seconds: 0,
  };
  const cost = layers.map(() => {
    const info = { name: '', weights: Math.floor(100 + rand() * 5000), channels: 16, bias: 16, macs: 1 };
    return bits.map((b) => layerSizeBytes(info, b));
  });
  return { table, cost };
}

function bruteForce(space: MixedPrecisionSpace, budget: number): { loss: number; genome: number[] } {
  const n = space.options.length;
  let best = { loss: Infinity, genome: [] as number[] };
  const g = new Array<number>(n).fill(0);
  const total = space.options.reduce((a, o) => a * o.length, 1);
  for (let code = 0; code < total; code++) {
    let c = code;
    let cost = 0;
    for (let i = 0; i < n; i++) {
      const opts = space.options[i]!;
      g[i] = opts[c % opts.length]!;
      c = Math.floor(c / opts.length);
      cost += space.cost[i]![g[i]!]!;
    }
    if (cost > budget) continue;
    const loss = space.loss(g);
    if (loss < best.loss) best = { loss, genome: [...g] };
  }
  return best;
}

const costOf = (space: MixedPrecisionSpace, g: readonly number[]): number => g.reduce((a, k, i) => a + space.cost[i]![k]!, 0);

describe('the genetic search', () => {
  it('finds the brute-force optimum of small problems (7 layers, 3 widths: 2,187 configurations)', () => {
    for (const seed of [1, 2, 3]) {
      const { table, cost } = problem(7, seed);
      const space = mixedPrecisionSpace(table, cost);
      const lo = costOf(space, space.options.map(() => 0));
      const hi = costOf(space, space.options.map(() => 2));
      for (const f of [0.1, 0.3, 0.5, 0.8]) {
        const budget = lo + f * (hi - lo);
        const exact = bruteForce(space, budget);
        const ga = geneticSearch(space, budget, { seed });
        expect(ga.cost).toBeLessThanOrEqual(budget);
        expect(ga.loss).toBeCloseTo(exact.loss, 12);
      }
    }
  });

  it('never returns a configuration over the budget, and refuses a budget below the cheapest configuration', () => {
    const { table, cost } = problem(12, 7);
    const space = mixedPrecisionSpace(table, cost);
    const lo = costOf(space, space.options.map(() => 0));
    const hi = costOf(space, space.options.map(() => 2));
    for (let s = 0; s <= 10; s++) {
      const budget = lo + ((hi - lo) * s) / 10;
      const r = geneticSearch(space, budget, { seed: s });
      expect(r.cost).toBeLessThanOrEqual(budget * (1 + 1e-12));
      expect(costOf(space, r.genome)).toBeCloseTo(r.cost, 9);
      // elitism: the best proxy never gets worse from one generation to the next
      for (let k = 1; k < r.history.length; k++) expect(r.history[k]).toBeLessThanOrEqual(r.history[k - 1]!);
      expect(r.history).toHaveLength(101);
    }
    expect(() => geneticSearch(space, lo * 0.99)).toThrow(BudgetError);
  });

  it('is deterministic for a seed', () => {
    const { table, cost } = problem(20, 11, 4);
    const space = mixedPrecisionSpace(table, cost);
    const budget = costOf(space, space.options.map(() => 1));
    const a = geneticSearch(space, budget, { seed: 5 });
    const b = geneticSearch(space, budget, { seed: 5 });
    expect(b).toEqual(a);
  });

  it('respects pinned layers', () => {
    const { table, cost } = problem(6, 4);
    const space = mixedPrecisionSpace(table, cost, { l0: 8, l5: 8 });
    const budget = costOf(space, [2, 0, 0, 0, 0, 2]);
    const r = geneticSearch(space, budget);
    const bits = layerBitsOf(space, r.genome);
    expect(bits.l0).toBe(8);
    expect(bits.l5).toBe(8);
    expect(() => mixedPrecisionSpace(table, cost, { l0: 3 })).toThrow(/not a candidate/);
  });

  it('is fast: 100 layers, population 50, 100 generations in well under the paper\'s 3 seconds', () => {
    const { table, cost } = problem(100, 3, 4);
    const space = mixedPrecisionSpace(table, cost);
    const budget = costOf(space, space.options.map(() => 1));
    const t0 = performance.now();
    geneticSearch(space, budget);
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});

describe('the Pareto front', () => {
  it('keeps only non-dominated points, by ascending cost, each within the budget it was searched at', () => {
    const { table, cost } = problem(8, 9);
    const space = mixedPrecisionSpace(table, cost);
    const front = paretoFront(space, { steps: 12, seed: 1 });
    expect(front.length).toBeGreaterThan(2);
    for (let i = 1; i < front.length; i++) {
      expect(front[i]!.cost).toBeGreaterThan(front[i - 1]!.cost);
      expect(front[i]!.loss).toBeLessThan(front[i - 1]!.loss);
    }
    for (const p of front) expect(p.cost).toBeLessThanOrEqual(p.budget * (1 + 1e-12));
    // the ends: everything at 2 bits, and the best loss at the highest budget
    expect(front[0]!.genome.every((k) => k === 0)).toBe(true);
    expect(front.at(-1)!.loss).toBeCloseTo(bruteForce(space, Infinity).loss, 12);
  });

  it('nonDominated drops dominated and duplicate points', () => {
    const pts = [
      { cost: 1, loss: 5 },
      { cost: 2, loss: 5 },
      { cost: 2, loss: 3 },
      { cost: 3, loss: 4 },
      { cost: 4, loss: 1 },
      { cost: 4, loss: 1 },
    ];
    expect(nonDominated(pts)).toEqual([{ cost: 1, loss: 5 }, { cost: 2, loss: 3 }, { cost: 4, loss: 1 }]);
  });
});
