import { STEP_INITS, type Bits, type QuantGranularity, type StepInit, type WeightGrid } from './quant/quantizer';
import type { QuantLayer } from './graph/layers';
import type { Granularity, PartitionEdit } from './graph/partition';

export type MethodName = 'rtn' | 'adaround' | 'brecq' | 'qdrop' | 'nwq' | 'decoupleq';

export const METHODS: readonly MethodName[] = ['rtn', 'adaround', 'brecq', 'qdrop', 'nwq', 'decoupleq'];

/** Methods that reconstruct block by block over a partition (algorithms.md §3, §4). */
export const BLOCK_METHODS: readonly MethodName[] = ['brecq', 'qdrop', 'nwq'];

/** Methods that save a checkpoint after every block and resume from it. NWQ optimises the whole network at once: it has no block boundary to save at. */
export const RESUMABLE_METHODS: readonly MethodName[] = ['brecq', 'qdrop'];

export const GRANULARITIES: readonly Granularity[] = ['layer', 'block', 'stage', 'net'];

/** Weight groups along the input dimension (GPTQ/AWQ-style blocked quantization); absent means per output channel. */
export type GroupSize = 32 | 64 | 128;

export const GROUP_SIZES: readonly GroupSize[] = [32, 64, 128];

/**
 * The weight grid below 8 bits. 'asymmetric': unsigned codes 0 … 2^b − 1 with a zero point per
 * channel or group, as BRECQ, QDrop and MQBench quantize weights (the default). 'symmetric': signed
 * codes −2^(b−1) … 2^(b−1) − 1 with zero point 0. At 8 bits weights are always int8 symmetric
 * [−127, 127], the form ONNX Runtime's integer kernels take; decoupleQ solves its own grid
 * (signed codes with a float offset) and ignores this.
 */
export type WeightGridKind = 'asymmetric' | 'symmetric';

export const WEIGHT_GRIDS: readonly WeightGridKind[] = ['asymmetric', 'symmetric'];

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
  /**
   * Weight step-size initialisation (algorithms.md §1.2); default as each method's reference:
   * min–max for round-to-nearest, QDrop's MSE observer for QDrop, BRECQ's Lp search otherwise.
   */
  readonly scale?: StepInit;
  /** Activation step-size initialisation; default min–max over all images for the layer-wise methods, Lp (BRECQ, NWQ) or MSE (QDrop) on 64 images. */
  readonly actScale?: StepInit;
  /** Weights per group of this many inputs instead of per output channel (absent or null: per channel). */
  readonly groupSize?: GroupSize;
  /** The weight grid below 8 bits (absent: asymmetric, the references' grid). */
  readonly weightGrid?: WeightGridKind;
  /** Optimisation steps per layer (AdaRound, default 10,000), per block (BRECQ, QDrop: 20,000; decoupleQ's float refinement: 2,000). */
  readonly iters?: number;
  /** Seeds every random choice of a run (batch sampling), so the same plan gives the same numbers. */
  readonly seed?: number;
  /** Block methods: the unit reconstructed at once (default 'block') and the user's edits of the partition. */
  readonly granularity?: Granularity;
  readonly partitionEdits?: readonly PartitionEdit[];
  /** AdaRound regulariser weight λ (default 0.01; the references use 0.1 for MobileNetV2). */
  readonly lambda?: number;
  /** BRECQ's activation-step pass: iterations per block (reference 5,000). */
  readonly actIters?: number;
  /** QDrop: probability of keeping an activation quantized during reconstruction (reference 0.5). */
  readonly keep?: number;
  /** BRECQ: weight the block-output error by the diagonal Fisher information (the paper), instead of plain MSE (the code's default). */
  readonly fisher?: boolean;
  /** NWQ: where the activation-regularisation loss looks (default block outputs; layer outputs suit ResNets, §5.1). */
  readonly taps?: 'block' | 'layer';
}

/** AdaRound's iterations per layer in the paper and in MQBench's runs (algorithms.md §2.4). */
export const ADAROUND_ITERS = 10_000;

/** BRECQ's and QDrop's iterations per block in their code (algorithms.md §3.3, §4). */
export const BLOCK_ITERS = 20_000;

/** decoupleQ's block-wise refinement of the float parts: steps per block (the LLaMA script's 4 epochs × 128 samples is ~500; an assumption for CNNs). */
export const DECOUPLEQ_BLOCK_ITERS = 2000;

export const DEFAULT_PLAN: QuantPlan = { method: 'rtn', wbits: 8, abits: 8, headStem8bit: true };

export function weightBitsFor(layer: Pick<QuantLayer, 'name' | 'isFirst' | 'isLast'>, plan: QuantPlan): Bits {
  const override = plan.layerBits?.[layer.name];
  if (override) return override;
  if (plan.headStem8bit && (layer.isFirst || layer.isLast)) return 8;
  return plan.wbits;
}

export function scaleSearchFor(plan: QuantPlan): StepInit {
  return plan.scale ?? (plan.method === 'rtn' ? 'minmax' : plan.method === 'qdrop' ? 'mse' : 'lp');
}

export function actScaleFor(plan: QuantPlan): StepInit {
  return plan.actScale ?? (plan.method === 'qdrop' ? 'mse' : BLOCK_METHODS.includes(plan.method) ? 'lp' : 'minmax');
}

export function weightGridKindOf(plan: QuantPlan): WeightGridKind {
  return plan.weightGrid ?? 'asymmetric';
}

/** A layer's weight grid: `bits` wide, int8 symmetric at 8 bits, otherwise of `kind`, per channel on `axis` or per group. */
export function weightGrid(bits: Bits, kind: WeightGridKind, groupSize: GroupSize | undefined, axis: number): WeightGrid {
  return { bits, symmetric: bits === 8 || kind === 'symmetric', granularity: weightGranularity(groupSize, axis) };
}

/** The weight granularity of a plan, for a weight with its output channels on `axis`. */
export function weightGranularity(groupSize: GroupSize | undefined, axis: number): QuantGranularity {
  return groupSize ? { kind: 'group', axis, size: groupSize } : { kind: 'channel', axis };
}

export class PlanError extends Error {
  override name = 'PlanError';
}

const BITS = new Set([2, 3, 4, 5, 6, 7, 8]);

/**
 * Checks a valid plan against the model it is run on: per-layer bits naming layers the model does
 * not have (a plan saved for another model) would
 * otherwise be ignored without a word.
 */
export function checkPlanFits(plan: QuantPlan, layerNames: readonly string[]): void {
  const known = new Set(layerNames);
  const unknown = Object.keys(plan.layerBits ?? {}).filter((n) => !known.has(n));
  if (unknown.length === 0) return;
  const list = (xs: readonly string[]) => xs.slice(0, 5).map((x) => JSON.stringify(x)).join(', ') + (xs.length > 5 ? `, … (${xs.length} in all)` : '');
  throw new PlanError(`the plan's layerBits name ${unknown.length === 1 ? 'a layer' : 'layers'} this model does not have: ${list(unknown)}; its layers are ${list(layerNames)}`);
}

/** Checks a plan read from a file or the command line; returns it typed, or says what is wrong. */
export function parsePlan(value: unknown): QuantPlan {
  if (typeof value !== 'object' || value === null) throw new PlanError('a plan must be a JSON object');
  const v = value as Record<string, unknown>;
  if (!METHODS.includes(v.method as MethodName)) throw new PlanError(`unknown method ${JSON.stringify(v.method)}; this version supports: ${METHODS.join(', ')}`);
  for (const k of ['scale', 'actScale'] as const) {
    if (v[k] !== undefined && !STEP_INITS.includes(v[k] as StepInit)) throw new PlanError(`${k} must be one of ${STEP_INITS.map((x) => `"${x}"`).join(', ')}, got ${JSON.stringify(v[k])}`);
  }
  if (v.weightGrid !== undefined && !WEIGHT_GRIDS.includes(v.weightGrid as WeightGridKind)) throw new PlanError(`weightGrid must be ${WEIGHT_GRIDS.map((x) => `"${x}"`).join(' or ')}, got ${JSON.stringify(v.weightGrid)}`);
  if (v.groupSize !== undefined && v.groupSize !== null && !GROUP_SIZES.includes(v.groupSize as GroupSize)) throw new PlanError(`groupSize must be ${GROUP_SIZES.join(', ')} or null (per channel), got ${JSON.stringify(v.groupSize)}`);
  for (const k of ['iters', 'seed'] as const) {
    if (v[k] !== undefined && (!Number.isInteger(v[k]) || (v[k] as number) < (k === 'iters' ? 1 : 0))) throw new PlanError(`${k} must be a ${k === 'iters' ? 'positive' : 'non-negative'} integer, got ${JSON.stringify(v[k])}`);
  }
  if (!BITS.has(v.wbits as number)) throw new PlanError(`wbits must be an integer from 2 to 8, got ${JSON.stringify(v.wbits)}`);
  if (v.abits !== null && !BITS.has(v.abits as number)) throw new PlanError(`abits must be an integer from 2 to 8, or null, got ${JSON.stringify(v.abits)}`);
  for (const k of ['lambda', 'keep'] as const) {
    if (v[k] !== undefined && !(typeof v[k] === 'number' && (v[k] as number) >= 0 && (k !== 'keep' || (v[k] as number) <= 1))) throw new PlanError(`${k} must be a number${k === 'keep' ? ' from 0 to 1' : ' ≥ 0'}, got ${JSON.stringify(v[k])}`);
  }
  if (v.actIters !== undefined && (!Number.isInteger(v.actIters) || (v.actIters as number) < 0)) throw new PlanError(`actIters must be a non-negative integer, got ${JSON.stringify(v.actIters)}`);
  if (v.taps !== undefined && v.taps !== 'block' && v.taps !== 'layer') throw new PlanError(`taps must be "block" or "layer", got ${JSON.stringify(v.taps)}`);
  if (v.granularity !== undefined && !GRANULARITIES.includes(v.granularity as Granularity)) throw new PlanError(`granularity must be one of ${GRANULARITIES.join(', ')}, got ${JSON.stringify(v.granularity)}`);
  const edits = v.partitionEdits ?? [];
  const isEdit = (e: unknown): e is PartitionEdit => {
    if (typeof e !== 'object' || e === null) return false;
    const r = e as Record<string, unknown>;
    if ('merge' in r) return Array.isArray(r.merge) && r.merge.length >= 2 && r.merge.every((x) => typeof x === 'string');
    return typeof r.split === 'string' && typeof r.after === 'string';
  };
  if (!Array.isArray(edits) || !edits.every(isEdit)) throw new PlanError('partitionEdits must be a list of {"merge": [block ids]} or {"split": block id, "after": layer name}');
  const layerBits = v.layerBits ?? {};
  if (typeof layerBits !== 'object' || layerBits === null || Object.values(layerBits).some((b) => !BITS.has(b as number))) throw new PlanError('layerBits must map layer names to bit widths from 2 to 8');
  return {
    method: v.method as MethodName,
    wbits: v.wbits as Bits,
    abits: v.abits as Bits | null,
    headStem8bit: v.headStem8bit !== false,
    layerBits: layerBits as Record<string, Bits>,
    ...(v.scale !== undefined ? { scale: v.scale as StepInit } : {}),
    ...(v.actScale !== undefined ? { actScale: v.actScale as StepInit } : {}),
    ...(v.groupSize !== undefined && v.groupSize !== null ? { groupSize: v.groupSize as GroupSize } : {}),
    ...(v.weightGrid !== undefined ? { weightGrid: v.weightGrid as WeightGridKind } : {}),
    ...(v.iters !== undefined ? { iters: v.iters as number } : {}),
    ...(v.seed !== undefined ? { seed: v.seed as number } : {}),
    ...(v.granularity !== undefined ? { granularity: v.granularity as Granularity } : {}),
    ...(edits.length ? { partitionEdits: edits as PartitionEdit[] } : {}),
    ...(v.lambda !== undefined ? { lambda: v.lambda as number } : {}),
    ...(v.actIters !== undefined ? { actIters: v.actIters as number } : {}),
    ...(v.keep !== undefined ? { keep: v.keep as number } : {}),
    ...(v.fisher === true ? { fisher: true } : {}),
    ...(v.taps !== undefined ? { taps: v.taps as 'block' | 'layer' } : {}),
  };
}
