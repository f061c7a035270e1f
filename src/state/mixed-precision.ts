/**
 * What the mixed-precision panel derives from a search and the plan: plain functions over plain
 * data, so that the charts, their tables and the tests read the same numbers.
 */
import type { Bits } from '../core/quant/quantizer';
import { weightBitsFor, type QuantPlan } from '../core/plan';
import { configCost, uniformBits, type CostContext, type CostMetric, type LatencyTable } from '../core/search/cost';
import type { ConfigPoint, SearchReport } from '../core/search/run';
import type { SearchLayer } from '../core/search/layers';
import type { RunSummary } from '../common/protocol';

/** One configuration the panel can load: a point of the front, a uniform plan, or both. */
export interface SearchPoint extends ConfigPoint {
  /** The width of a uniform plan (pinned layers aside); null for a mixed configuration. */
  readonly uniform: Bits | null;
  readonly onFront: boolean;
  /** The configuration the genetic search chose at the budget. */
  readonly chosen: boolean;
}

/** A configuration as a comparable key: the bits in layer order. */
export function bitsKey(layers: readonly { readonly name: string }[], layerBits: Readonly<Record<string, Bits>>): string {
  return layers.map((l) => layerBits[l.name] ?? '?').join(' ');
}

/** The front and the uniform plans, one entry per distinct configuration, by ascending cost (then proxy). */
export function searchPoints(report: SearchReport): SearchPoint[] {
  const key = (p: ConfigPoint) => bitsKey(report.layers, p.layerBits);
  const chosen = key(report.chosen);
  const points = new Map<string, SearchPoint>();
  for (const { budget: _, ...p } of report.front) points.set(key(p), { ...p, uniform: null, onFront: true, chosen: key(p) === chosen });
  for (const { bits, ...u } of report.uniform) {
    const k = key(u);
    const known = points.get(k);
    points.set(k, known ? { ...known, uniform: bits } : { ...u, uniform: bits, onFront: false, chosen: k === chosen });
  }
  return [...points.values()].sort((a, b) => a.cost - b.cost || a.proxy - b.proxy);
}

/** Every layer's weight bits under a plan: its override, else the head/stem rule, else the plan's width. */
export function planBits(plan: QuantPlan, layers: readonly SearchLayer[]): Record<string, Bits> {
  return Object.fromEntries(layers.map((l) => [l.name, weightBitsFor(l, plan)]));
}

/**
 * The plan that runs a configuration. A uniform one (the head/stem rule of the plan aside) becomes
 * the plain plan at that width, so that it reads and compares as one; any other keeps its per-layer
 * widths, with the widest as `wbits` (as `lowbit search` writes it).
 */
export function planWithBits(plan: QuantPlan, layerBits: Readonly<Record<string, Bits>>, layers: readonly SearchLayer[]): QuantPlan {
  const key = bitsKey(layers, layerBits);
  for (const b of new Set(Object.values(layerBits))) {
    const uniform: QuantPlan = { ...plan, wbits: b, layerBits: {} };
    if (bitsKey(layers, planBits(uniform, layers)) === key) return uniform;
  }
  return { ...plan, wbits: Math.max(...Object.values(layerBits)) as Bits, layerBits: { ...layerBits } };
}

/** How a plan's bits read in a table: "W4A8", or "W2–8 mixed, A8" when its per-layer widths differ. */
export function planBitsLabel(plan: QuantPlan): string {
  const widths = [...new Set(Object.values(plan.layerBits ?? {}))];
  const a = `A${plan.abits ?? 32}`;
  if (widths.length < 2) return `W${widths[0] ?? plan.wbits}${a}`;
  return `W${Math.min(...widths)}–${Math.max(...widths)} mixed, ${a}`;
}

/**
 * The uniform plans' costs for the budget's reference, the head/stem layers pinned at 8 bits when
 * the plan pins them (as the search will). Latency needs a table with the width: others are left out.
 */
export function uniformCosts(metric: CostMetric, layers: readonly SearchLayer[], abits: Bits | null, headStem8bit: boolean, bits: readonly Bits[], latency: LatencyTable | null): { bits: Bits; cost: number }[] {
  if (metric === 'bitops' && layers.some((l) => l.macs === null)) return [];
  const ctx: CostContext = { layers, abits, latency };
  return bits
    .filter((b) => metric !== 'latency' || (latency !== null && layers.every((l) => latency.layers[l.name]?.[String(b)] !== undefined)))
    .map((b) => {
      const layerBits = uniformBits(layers, b);
      if (headStem8bit) for (const l of layers) if (l.isFirst || l.isLast) layerBits[l.name] = 8;
      return { bits: b, cost: configCost(metric, ctx, layerBits) };
    });
}

/** A finished run of one of the search's configurations, found in the history by its per-layer bits. */
export interface MeasuredRun {
  readonly point: SearchPoint;
  readonly run: RunSummary;
}

/** The history's runs of this model whose plans quantize the weights exactly as one of `points` does, oldest first. */
export function measuredRuns(history: readonly RunSummary[], modelName: string, layers: readonly SearchLayer[], points: readonly SearchPoint[]): MeasuredRun[] {
  const byKey = new Map(points.map((p) => [bitsKey(layers, p.layerBits), p]));
  return history.flatMap((run) => {
    if (run.modelName !== modelName) return [];
    const point = byKey.get(bitsKey(layers, planBits(run.plan, layers)));
    return point ? [{ point, run }] : [];
  });
}
