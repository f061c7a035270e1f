import type { Bits } from './quant/quantizer';
import type { QuantLayer } from './graph/layers';

export type MethodName = 'rtn' | 'adaround';

export const METHODS: readonly MethodName[] = ['rtn', 'adaround'];

/** How weight step sizes are chosen (algorithms.md §1.2): min–max, or BRECQ's 80-candidate 2.4-norm search. */
export type ScaleSearch = 'minmax' | 'lp';

/** Everything that decides a run's numbers. Serialisable: saved with results, loaded back to re-run. */
export interface QuantPlan {
  readonly method: MethodName;
  /** Weight bits for every layer, unless the head/stem rule or `layerBits` says otherwise. */
  readonly wbits: Bits;
  /** Activation bits; null keeps activations in float (weight-only). */
  readonly abits: Bits | null;
  /** First and last layer weights, and the classifier's input, at 8 bits (algorithms.md §1.5). */
  readonly headStem8bit: boolean;
  /** Per-layer weight-bit overrides, by layer name. */
  readonly layerBits?: Readonly<Record<string, Bits>>;
  /** Weight step-size search; default min–max for round-to-nearest, Lp for AdaRound (as the references). */
  readonly scale?: ScaleSearch;
  /** Optimisation steps per layer (AdaRound); the reference default is 10,000. */
  readonly iters?: number;
  /** Seeds every random choice of a run (batch sampling), so the same plan gives the same numbers. */
  readonly seed?: number;
}

/** AdaRound's iterations per layer in the paper and in MQBench's runs (algorithms.md §2.4). */
export const ADAROUND_ITERS = 10_000;

export const DEFAULT_PLAN: QuantPlan = { method: 'rtn', wbits: 8, abits: 8, headStem8bit: true };

export function weightBitsFor(layer: QuantLayer, plan: QuantPlan): Bits {
  const override = plan.layerBits?.[layer.name];
  if (override) return override;
  if (plan.headStem8bit && (layer.isFirst || layer.isLast)) return 8;
  return plan.wbits;
}

export function scaleSearchFor(plan: QuantPlan): ScaleSearch {
  return plan.scale ?? (plan.method === 'rtn' ? 'minmax' : 'lp');
}

export class PlanError extends Error {
  override name = 'PlanError';
}

const BITS = new Set([2, 3, 4, 5, 6, 7, 8]);

/** Checks a plan read from a file or the command line; returns it typed, or says what is wrong. */
export function parsePlan(value: unknown): QuantPlan {
  if (typeof value !== 'object' || value === null) throw new PlanError('a plan must be a JSON object');
  const v = value as Record<string, unknown>;
  if (!METHODS.includes(v.method as MethodName)) throw new PlanError(`unknown method ${JSON.stringify(v.method)}; this version supports: ${METHODS.join(', ')}`);
  if (v.scale !== undefined && v.scale !== 'minmax' && v.scale !== 'lp') throw new PlanError(`scale must be "minmax" or "lp", got ${JSON.stringify(v.scale)}`);
  for (const k of ['iters', 'seed'] as const) {
    if (v[k] !== undefined && (!Number.isInteger(v[k]) || (v[k] as number) < (k === 'iters' ? 1 : 0))) throw new PlanError(`${k} must be a ${k === 'iters' ? 'positive' : 'non-negative'} integer, got ${JSON.stringify(v[k])}`);
  }
  if (!BITS.has(v.wbits as number)) throw new PlanError(`wbits must be an integer from 2 to 8, got ${JSON.stringify(v.wbits)}`);
  if (v.abits !== null && !BITS.has(v.abits as number)) throw new PlanError(`abits must be an integer from 2 to 8, or null, got ${JSON.stringify(v.abits)}`);
  const layerBits = v.layerBits ?? {};
  if (typeof layerBits !== 'object' || layerBits === null || Object.values(layerBits).some((b) => !BITS.has(b as number))) throw new PlanError('layerBits must map layer names to bit widths from 2 to 8');
  return {
    method: v.method as MethodName,
    wbits: v.wbits as Bits,
    abits: v.abits as Bits | null,
    headStem8bit: v.headStem8bit !== false,
    layerBits: layerBits as Record<string, Bits>,
    ...(v.scale !== undefined ? { scale: v.scale as ScaleSearch } : {}),
    ...(v.iters !== undefined ? { iters: v.iters as number } : {}),
    ...(v.seed !== undefined ? { seed: v.seed as number } : {}),
  };
}
