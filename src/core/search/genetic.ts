import type { Bits } from '../quant/quantizer';
import { rng } from '../random';
import { compileProxy, type SensitivityTable } from './sensitivity';

/**
 * BRECQ's genetic search for per-layer bit widths (algorithms.md §3.5): minimise the proxy loss
 * subject to cost ≤ budget. Settings from the paper: population 50, 100 generations, mutation
 * probability 0.1. The paper does not give the operators; these were chosen by measuring how
 * often the search reaches the brute-force optimum (3^10 configurations) of the demo model's table
 * and of random tables at 31 budgets each (bench/RESULTS.md, "Mixed precision"):
 *
 * - selection: truncation. The 25 best individuals of a generation are the parents; the 10 best
 *   survive unchanged (elitism), so the best proxy never gets worse.
 * - mutation: each gene, with probability 0.1, moves to another of its allowed widths (drawn
 *   uniformly among the others).
 * - 20 mutants: a random parent, mutated.
 * - 20 crossovers: two random parents, each gene from either with probability 1/2 (uniform
 *   crossover), then mutated.
 * - a child over the budget, or already in the population, is discarded and another drawn, up to
 *   ten tries per place; the population may then be smaller for a generation.
 *
 * The first population holds the cheapest configuration, every uniform configuration within the
 * budget, greedy configurations (see `greedySeeds`), and random ones pushed under the budget by
 * lowering random genes one step at a time.
 * Every random choice comes from `rng(seed)`: the same inputs and seed give the same result.
 */

export interface GeneticOptions {
  readonly population?: number;
  readonly generations?: number;
  /** Per-gene mutation probability. */
  readonly mutation?: number;
  /** Truncation: how many of the best are parents. */
  readonly parents?: number;
  /** How many of the best survive unchanged into the next generation. */
  readonly elites?: number;
  readonly seed?: number;
  /** Seed the first population with greedy configurations (default true; off only to measure what they bring). */
  readonly greedy?: boolean;
}

export const GA_DEFAULTS = { population: 50, generations: 100, mutation: 0.1, parents: 25, elites: 10, seed: 0, greedy: true } as const;

/**
 * A search space: `options[g]` lists the choices gene g may take (indices into whatever the
 * caller's candidates are), `cost[g][c]` the cost of gene g at choice c (costs add over genes),
 * `loss` the objective.
 */
export interface SearchSpace {
  readonly options: readonly (readonly number[])[];
  readonly cost: readonly (readonly number[])[];
  readonly loss: (genome: ArrayLike<number>) => number;
}

export interface GeneticResult {
  readonly genome: number[];
  readonly loss: number;
  readonly cost: number;
  /** The best loss after each generation (index 0: the first population). */
  readonly history: number[];
  /** Distinct configurations evaluated. */
  readonly evaluated: number;
}

export class BudgetError extends Error {
  override name = 'BudgetError';
}

interface Individual {
  readonly genome: Uint8Array;
  readonly key: string;
  readonly loss: number;
  readonly cost: number;
}

const byFitness = (a: Individual, b: Individual): number => a.loss - b.loss || a.cost - b.cost || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function totalCost(space: SearchSpace, g: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < g.length; i++) c += space.cost[i]![g[i]!]!;
  return c;
}

/** The cheapest choice of each gene. */
export function cheapestGenome(space: SearchSpace): number[] {
  return space.options.map((opts, g) => opts.reduce((best, c) => (space.cost[g]![c]! < space.cost[g]![best]! ? c : best), opts[0]!));
}

/** The dearest choice of each gene. */
export function dearestGenome(space: SearchSpace): number[] {
  return space.options.map((opts, g) => opts.reduce((best, c) => (space.cost[g]![c]! > space.cost[g]![best]! ? c : best), opts[0]!));
}

/** Budgets are compared with a relative tolerance, so that "the cost of uniform W3" as a budget admits uniform W3. */
const within = (cost: number, budget: number): boolean => cost <= budget * (1 + 1e-12) + 1e-12;

export function geneticSearch(space: SearchSpace, budget: number, options: GeneticOptions = {}): GeneticResult {
  const o = { ...GA_DEFAULTS, ...options };
  const genes = space.options.length;
  if (genes === 0) throw new BudgetError('nothing to search: no layers');
  if (space.options.some((opts) => opts.length === 0)) throw new BudgetError('a layer has no allowed bit width');
  const cheapest = cheapestGenome(space);
  const minCost = totalCost(space, cheapest);
  if (!within(minCost, budget)) throw new BudgetError(`the budget (${budget.toPrecision(4)}) is below the cheapest configuration (${minCost.toPrecision(4)})`);
  const rand = rng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const seen = new Map<string, Individual>();
  const make = (g: Uint8Array): Individual => {
    const key = g.join(',');
    let ind = seen.get(key);
    if (!ind) {
      ind = { genome: g, key, loss: space.loss(g), cost: totalCost(space, g) };
      seen.set(key, ind);
    }
    return ind;
  };
  /** Lowers random genes one step (to a cheaper allowed choice) until the genome fits. */
  const repair = (g: Uint8Array): Uint8Array => {
    let c = totalCost(space, g);
    while (!within(c, budget)) {
      const dear = [...g.keys()].filter((i) => space.cost[i]![g[i]!]! > space.cost[i]![cheapest[i]!]!);
      const i = pick(dear);
      const cheaper = space.options[i]!.filter((k) => space.cost[i]![k]! < space.cost[i]![g[i]!]!);
      // one step: the dearest of the cheaper choices
      const next = cheaper.reduce((best, k) => (space.cost[i]![k]! > space.cost[i]![best]! ? k : best), cheaper[0]!);
      c += space.cost[i]![next]! - space.cost[i]![g[i]!]!;
      g[i] = next;
    }
    return g;
  };

  let population: Individual[] = [];
  const members = new Set<string>();
  const add = (ind: Individual): boolean => {
    if (members.has(ind.key) || !within(ind.cost, budget)) return false;
    members.add(ind.key);
    population.push(ind);
    return true;
  };
  add(make(Uint8Array.from(cheapest)));
  if (o.greedy) for (const g of greedySeeds(space, budget)) add(make(g));
  const allChoices = [...new Set(space.options.flat())].sort((a, b) => a - b);
  for (const c of allChoices) {
    const g = Uint8Array.from(space.options.map((opts, i) => (opts.includes(c) ? c : cheapest[i]!)));
    add(make(g));
  }
  for (let tries = 0; population.length < o.population && tries < o.population * 20; tries++) {
    add(make(repair(Uint8Array.from(space.options.map((opts) => pick(opts))))));
  }

  const history: number[] = [];
  const elites = Math.min(o.elites, o.parents);
  const nMut = Math.floor((o.population - elites) / 2);
  const nCross = o.population - elites - nMut;
  const mutate = (g: Uint8Array): Uint8Array => {
    for (let i = 0; i < genes; i++) {
      if (rand() >= o.mutation) continue;
      const others = space.options[i]!.filter((k) => k !== g[i]);
      if (others.length) g[i] = pick(others);
    }
    return g;
  };
  for (let gen = 0; gen <= o.generations; gen++) {
    population.sort(byFitness);
    history.push(population[0]!.loss);
    if (gen === o.generations) break;
    const parents = population.slice(0, o.parents);
    population = [];
    members.clear();
    for (const p of parents.slice(0, elites)) add(p);
    let made = 0;
    for (let tries = 0; made < nMut && tries < nMut * 10; tries++) {
      if (add(make(mutate(Uint8Array.from(pick(parents).genome))))) made++;
    }
    made = 0;
    for (let tries = 0; made < nCross && tries < nCross * 10; tries++) {
      const a = pick(parents).genome;
      const b = pick(parents).genome;
      if (add(make(mutate(a.map((x, i) => (rand() < 0.5 ? x : b[i]!)))))) made++;
    }
    // nothing new fitted: carry the parents over
    if (population.length === 0) for (const p of parents) add(p);
  }
  const best = population[0]!;
  return { genome: [...best.genome], loss: best.loss, cost: best.cost, history, evaluated: seen.size };
}

/**
 * Knapsack-style greedy configurations that seed the first population. From the dearest and from
 * each uniform configuration: lower one gene one step at a time, the step adding the least loss
 * per unit of cost saved, or, once a single step can meet the budget, the one of those adding the
 * least loss; then raise one step at a time, the step removing the most loss per unit of cost,
 * while it fits. And raising alone from the cheapest. A genetic search moves by small random
 * steps, and trading one large layer against several small ones passes through configurations
 * over the budget, which it discards: without these seeds it missed the optimum at some budgets
 * by up to 2.2× on the demo model's table (bench/RESULTS.md).
 */
export function greedySeeds(space: SearchSpace, budget: number): Uint8Array[] {
  const genes = space.options.length;
  const sorted = space.options.map((opts, i) => [...opts].sort((a, b) => space.cost[i]![a]! - space.cost[i]![b]!));
  const step = (g: Uint8Array, i: number, dir: 1 | -1): number | undefined => {
    const opts = sorted[i]!;
    return opts[opts.indexOf(g[i]!) + dir];
  };
  /** Applies the best single step of `dir` (best loss change per cost) while `ok`; returns the genome. */
  const climb = (g: Uint8Array, dir: 1 | -1, ok: (cost: number) => boolean, until: (cost: number) => boolean): Uint8Array => {
    let cost = totalCost(space, g);
    let loss = space.loss(g);
    for (let guard = 0; guard < genes * 16 && !until(cost); guard++) {
      let best: { i: number; to: number; score: number; cost: number; loss: number } | null = null;
      /** Lowering: the step that alone meets the budget at the least loss, when there is one. */
      let finish: { i: number; to: number; cost: number; loss: number } | null = null;
      for (let i = 0; i < genes; i++) {
        const to = step(g, i, dir);
        if (to === undefined) continue;
        const from = g[i]!;
        g[i] = to;
        const c = cost + space.cost[i]![to]! - space.cost[i]![from]!;
        const l = space.loss(g);
        g[i] = from;
        if (!ok(c)) continue;
        const dc = Math.abs(c - cost) || 1e-30;
        // lowering: the least loss added per cost saved; raising: the most loss removed per cost added
        const score = (l - loss) / dc;
        if (!best || score < best.score) best = { i, to, score, cost: c, loss: l };
        if (dir === -1 && until(c) && (!finish || l < finish.loss)) finish = { i, to, cost: c, loss: l };
      }
      const take = finish ?? best;
      if (!take || (dir === 1 && take.loss >= loss)) break;
      g[take.i] = take.to;
      cost = take.cost;
      loss = take.loss;
    }
    return g;
  };
  const fits = (c: number): boolean => within(c, budget);
  const cheapest = cheapestGenome(space);
  const starts = [dearestGenome(space), ...[...new Set(space.options.flat())].map((c) => space.options.map((opts, i) => (opts.includes(c) ? c : cheapest[i]!)))];
  const seeds: Uint8Array[] = [];
  for (const start of starts) {
    const down = climb(Uint8Array.from(start), -1, () => true, fits);
    // after lowering, spend what is left of the budget
    seeds.push(down, climb(Uint8Array.from(down), 1, fits, () => false));
  }
  seeds.push(climb(Uint8Array.from(cheapest), 1, fits, () => false));
  return seeds.filter((g) => fits(totalCost(space, g)));
}

export interface FrontPoint<G = number[]> {
  readonly budget: number;
  readonly cost: number;
  readonly loss: number;
  readonly genome: G;
}

/** Points not dominated by another (no other has cost ≤ and loss ≤, one of them strictly), by ascending cost. */
export function nonDominated<T extends { readonly cost: number; readonly loss: number }>(points: readonly T[]): T[] {
  const sorted = [...points].sort((a, b) => a.cost - b.cost || a.loss - b.loss);
  const out: T[] = [];
  for (const p of sorted) {
    const last = out.at(-1);
    if (last && last.cost === p.cost && last.loss === p.loss) continue;
    if (last && p.loss >= last.loss) continue;
    out.push(p);
  }
  return out;
}

/**
 * The trade-off curve: the genetic search at `steps` budgets spread evenly from the cheapest to
 * the dearest configuration's cost, keeping the non-dominated (cost, loss) points.
 */
export function paretoFront(space: SearchSpace, options: GeneticOptions & { readonly steps?: number; readonly onProgress?: (done: number, total: number) => void } = {}): FrontPoint[] {
  const steps = Math.max(2, options.steps ?? 16);
  const lo = totalCost(space, cheapestGenome(space));
  const hi = totalCost(space, dearestGenome(space));
  const points: FrontPoint[] = [];
  for (let s = 0; s < steps; s++) {
    const budget = lo + ((hi - lo) * s) / (steps - 1);
    const r = geneticSearch(space, budget, options);
    points.push({ budget, cost: r.cost, loss: r.loss, genome: r.genome });
    options.onProgress?.(s + 1, steps);
  }
  return nonDominated(points);
}

/** A mixed-precision search space from a sensitivity table and a cost matrix (`cost[layer][k]` for `table.bits[k]`). */
export interface MixedPrecisionSpace extends SearchSpace {
  readonly layers: readonly string[];
  readonly bits: readonly Bits[];
}

/** `pinned` fixes layers at a width (e.g. the first and last layer at 8 bits); it must be a candidate. */
export function mixedPrecisionSpace(table: SensitivityTable, cost: readonly (readonly number[])[], pinned: Readonly<Record<string, Bits>> = {}): MixedPrecisionSpace {
  const all = table.bits.map((_, k) => k);
  const options = table.layers.map((l) => {
    const pin = pinned[l.name];
    if (pin === undefined) return all;
    const k = table.bits.indexOf(pin);
    if (k < 0) throw new BudgetError(`layer "${l.name}" is pinned at ${pin} bits, which is not a candidate (${table.bits.join(', ')})`);
    return [k];
  });
  if (cost.length !== table.layers.length || cost.some((row) => row.length !== table.bits.length)) throw new BudgetError('the cost matrix does not match the sensitivity table');
  return { layers: table.layers.map((l) => l.name), bits: table.bits, options, cost, loss: compileProxy(table) };
}

export function layerBitsOf(space: MixedPrecisionSpace, genome: readonly number[]): Record<string, Bits> {
  return Object.fromEntries(space.layers.map((name, i) => [name, space.bits[genome[i]!]!]));
}
