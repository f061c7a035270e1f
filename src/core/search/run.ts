import type { ExternalFiles } from '../onnx/tensor-data';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { editedPartition } from '../graph/partition';
import { ImageBatches } from '../data/batches';
import { DatasetError, type ImageFile } from '../data/image-set';
import type { PreprocessSpec } from '../data/preprocess';
import type { Bits } from '../quant/quantizer';
import { WasmConvPool } from '../engine/conv-engine';
import { batchSizeFor, loadModel, ModelInputError } from '../pipeline';
import { parsePlan, type MethodName, type QuantPlan } from '../plan';
import { costMatrix, costSummary, layerCostInfo, METRIC_UNITS, parseLatencyTable, uniformBits, type Budget, type CostContext, type LatencyTable, type LayerCostInfo } from './cost';
import { measureLatencyTable } from './latency';
import { measureSensitivity, proxyLoss, type SensitivityMode, type SensitivityTable } from './sensitivity';
import { BudgetError, geneticSearch, GA_DEFAULTS, layerBitsOf, mixedPrecisionSpace, nonDominated, paretoFront, type GeneticOptions } from './genetic';
import type { SearchEmit } from './events';

/**
 * One mixed-precision search, from model bytes to a plan: sensitivities, costs, the genetic search
 * at the budget and the Pareto front across budgets. The command line and the studio call this;
 * `searchWithTable` alone re-runs the (fast) search part on a table already measured.
 */

export interface SearchInput {
  readonly model: Uint8Array;
  readonly modelName: string;
  readonly external?: ExternalFiles;
  readonly calib: readonly ImageFile[];
  readonly preprocess: PreprocessSpec;
  readonly budget: Budget;
  /** Candidate weight bits (default 2, 4, 8). */
  readonly bits?: readonly Bits[];
  /** Activation bits of the plan (BitOPs and latency count them); null: weight-only. */
  readonly abits: Bits | null;
  readonly mode: SensitivityMode;
  /** Reconstructed mode: BRECQ iterations per block and table entry. */
  readonly iters?: number;
  /** The method the plan names (default brecq). */
  readonly method?: MethodName;
  readonly seed?: number;
  /** Pins the first and last layer at 8 bits (8 must be a candidate), and says so in the plan; default true, as a quantize plan. */
  readonly headStem8bit?: boolean;
  /** A latency lookup table (JSON as read); measured with ONNX Runtime when a latency budget has none. */
  readonly latencyTable?: unknown;
  /** A table measured before (same model and candidates): skips the measurement. */
  readonly sensitivity?: SensitivityTable;
  /** Budgets swept for the Pareto front (default 16). */
  readonly frontSteps?: number;
  readonly genetic?: GeneticOptions;
}

/** One configuration with its proxy and every cost the search knows. */
export interface ConfigPoint {
  readonly layerBits: Readonly<Record<string, Bits>>;
  readonly proxy: number;
  /** Cost under the budget's metric, base unit (bytes, BitOPs, ms). */
  readonly cost: number;
  readonly sizeBytes: number;
  readonly bitops: number | null;
  readonly latencyMs: number | null;
}

export interface SearchOutcome {
  readonly budget: Budget;
  readonly chosen: ConfigPoint;
  /** Non-dominated configurations across budgets from the cheapest to the dearest, by ascending cost. */
  readonly front: readonly (ConfigPoint & { readonly budget: number })[];
  /** Every candidate width on every layer (pins respected), for comparison. */
  readonly uniform: readonly (ConfigPoint & { readonly bits: Bits })[];
  /** Best proxy per generation of the search at the budget. */
  readonly history: readonly number[];
  readonly evaluated: number;
  readonly genetic: Required<Omit<GeneticOptions, 'seed'>> & { readonly seed: number };
}

export interface SearchReport extends SearchOutcome {
  readonly tool: 'lowbit-studio';
  readonly kind: 'mixed-precision-search';
  readonly reportVersion: 1;
  readonly model: { readonly name: string; readonly params: number; readonly macs: number | null };
  readonly abits: Bits | null;
  readonly sensitivity: SensitivityTable;
  readonly layers: readonly LayerCostInfo[];
  readonly latency: LatencyTable | null;
  /** A plan `lowbit quantize --plan` and the studio accept: the chosen `layerBits`. */
  readonly plan: QuantPlan;
  /** Seconds per phase. */
  readonly timings: { readonly sensitivity: number; readonly latency: number; readonly search: number };
}

export function formatCost(metric: Budget['metric'], value: number): string {
  const { unit, scale } = METRIC_UNITS[metric];
  return `${(value / scale).toPrecision(4)} ${unit}`;
}

/** Refuses a budget below the cheapest configuration of the candidates (pins respected), in the budget's units. */
export function checkBudget(ctx: CostContext, budget: Budget, bits: readonly Bits[], pinned: Readonly<Record<string, Bits>> = {}): void {
  const matrix = costMatrix(budget.metric, ctx, bits);
  const min = ctx.layers.reduce((a, l, i) => {
    const pin = pinned[l.name];
    return a + (pin !== undefined ? matrix[i]![bits.indexOf(pin)]! : Math.min(...matrix[i]!));
  }, 0);
  if (budget.value < min * (1 - 1e-12)) {
    throw new BudgetError(`the budget, ${budget.metric} ≤ ${formatCost(budget.metric, budget.value)}, is below the cheapest configuration of the candidates (${formatCost(budget.metric, min)})`);
  }
}

/**
 * The genetic search at the budget, the front and the uniform references, from a measured table.
 * Synchronous and fast (well under a second for tens of layers): fit for a budget slider.
 */
export function searchWithTable(
  table: SensitivityTable,
  ctx: CostContext,
  budget: Budget,
  options: { readonly pinned?: Readonly<Record<string, Bits>>; readonly genetic?: GeneticOptions; readonly frontSteps?: number; readonly onFrontProgress?: (done: number, total: number) => void } = {},
): SearchOutcome {
  const names = table.layers.map((l) => l.name);
  const known = new Set(ctx.layers.map((l) => l.name));
  const missing = names.filter((n) => !known.has(n));
  if (missing.length) throw new BudgetError(`the sensitivity table names layers the model lacks: ${missing.slice(0, 3).join(', ')}`);
  // costs in the table's layer order
  const ordered: CostContext = { ...ctx, layers: names.map((n) => ctx.layers.find((l) => l.name === n)!) };
  const space = mixedPrecisionSpace(table, costMatrix(budget.metric, ordered, table.bits), options.pinned);
  const point = (layerBits: Record<string, Bits>): ConfigPoint => {
    const s = costSummary(ordered, layerBits);
    const cost = budget.metric === 'size' ? s.sizeBytes : budget.metric === 'bitops' ? s.bitops! : s.latencyMs!;
    return { layerBits, proxy: proxyLoss(table, layerBits), cost, ...s };
  };
  checkBudget(ordered, budget, table.bits, options.pinned);
  const genetic = { ...GA_DEFAULTS, ...options.genetic };
  const best = geneticSearch(space, budget.value, genetic);
  const front = paretoFront(space, { ...genetic, steps: options.frontSteps ?? 16, ...(options.onFrontProgress ? { onProgress: options.onFrontProgress } : {}) });
  const uniform = table.bits.map((b) => ({ bits: b, ...point({ ...uniformBits(ordered.layers, b), ...options.pinned }) }));
  const chosen = point(layerBitsOf(space, best.genome));
  // the chosen and the uniform configurations join the swept points before the non-dominated filter
  const candidates = [
    ...front.map((p) => ({ budget: p.budget, ...point(layerBitsOf(space, p.genome)) })),
    { budget: budget.value, ...chosen },
    ...uniform.map(({ bits: _, ...u }) => ({ budget: u.cost, ...u })),
  ];
  return {
    budget,
    chosen,
    front: nonDominated(candidates.map((c) => ({ ...c, loss: c.proxy }))).map(({ loss: _, ...c }) => c),
    uniform,
    history: best.history,
    evaluated: best.evaluated,
    genetic,
  };
}

export async function runSearch(input: SearchInput, emit: SearchEmit = () => {}, signal?: AbortSignal): Promise<SearchReport> {
  const { proto, summary } = await loadModel(input.model, input.external);
  const bs = batchSizeFor(summary, input.preprocess);
  if (input.calib.length === 0) throw new DatasetError('no calibration images were given');
  const { model: canonical } = canonicalize(proto);
  const layers = findQuantLayers(canonical);
  if (layers.length === 0) throw new ModelInputError('the model has no Conv, Gemm or MatMul layer with constant weights: nothing to quantize');
  const bits = [...new Set(input.bits ?? [2, 4, 8])].sort((a, b) => a - b) as Bits[];
  if (bits.length < 2) throw new BudgetError('give at least two candidate bit widths');
  const pinned: Record<string, Bits> = {};
  if (input.headStem8bit !== false) {
    if (!bits.includes(8)) throw new BudgetError('pinning the first and last layer at 8 bits needs 8 among the candidate widths');
    for (const l of layers) if (l.isFirst || l.isLast) pinned[l.name] = 8;
  }
  const seed = input.seed ?? 0;

  const costInfo = layerCostInfo(canonical, layers);
  // a given latency table and the budget are checked before minutes of measuring
  let latency: LatencyTable | null = input.latencyTable !== undefined ? parseLatencyTable(input.latencyTable, layers.map((l) => l.name), bits) : null;
  if (input.budget.metric !== 'latency' || latency) checkBudget({ layers: costInfo, abits: input.abits, latency }, input.budget, bits, pinned);

  const t0 = performance.now();
  let table = input.sensitivity;
  if (table) {
    if (table.bits.join() !== bits.join()) throw new BudgetError(`the given sensitivity table has candidates ${table.bits.join(', ')}, not ${bits.join(', ')}`);
  } else {
    const calib = new ImageBatches([...input.calib].sort((a, b) => a.path.localeCompare(b.path)), input.preprocess, bs);
    table = await measureSensitivity(
      { model: canonical, layers, blocks: editedPartition(canonical, 'block').blocks, calib, convs: new WasmConvPool() },
      { mode: input.mode, bits, seed, ...(input.iters !== undefined ? { iters: input.iters } : {}) },
      emit,
      signal,
    );
  }
  const tSens = (performance.now() - t0) / 1000;

  const t1 = performance.now();
  if (!latency && input.budget.metric === 'latency') {
    emit({ type: 'phase', phase: 'latency' });
    latency = await measureLatencyTable(canonical, layers, bits, { abits: input.abits, onProgress: (done, total) => emit({ type: 'progress', phase: 'latency', done, total }) }, signal);
  }
  const tLat = (performance.now() - t1) / 1000;

  const t2 = performance.now();
  emit({ type: 'phase', phase: 'genetic' });
  const ctx: CostContext = { layers: costInfo, abits: input.abits, latency };
  const outcome = searchWithTable(table, ctx, input.budget, {
    pinned,
    genetic: { ...input.genetic, seed },
    ...(input.frontSteps !== undefined ? { frontSteps: input.frontSteps } : {}),
    onFrontProgress: (done, total) => emit({ type: 'progress', phase: 'front', done, total }),
  });
  const tSearch = (performance.now() - t2) / 1000;

  const chosenBits = Object.values(outcome.chosen.layerBits);
  const plan = parsePlan({
    method: input.method ?? 'brecq',
    wbits: Math.max(...chosenBits),
    abits: input.abits,
    headStem8bit: input.headStem8bit !== false,
    layerBits: outcome.chosen.layerBits,
    seed,
  });
  return {
    tool: 'lowbit-studio',
    kind: 'mixed-precision-search',
    reportVersion: 1,
    model: { name: input.modelName, params: summary.params, macs: summary.macs },
    abits: input.abits,
    sensitivity: table,
    layers: ctx.layers,
    latency,
    ...outcome,
    plan,
    timings: { sensitivity: tSens, latency: tLat, search: tSearch },
  };
}
