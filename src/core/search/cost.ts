import type { ModelProto, TensorProto } from '../onnx/schema';
import { elementCount } from '../onnx/tensor-data';
import type { QuantLayer } from '../graph/layers';
import { summarizeModel } from '../graph/summary';
import type { Bits } from '../quant/quantizer';

/**
 * Hardware cost of a per-layer weight-bit configuration (algorithms.md §3.5): model size, BitOPs,
 * or latency from a per-layer lookup table. All three are sums over layers, so a configuration's
 * cost is a table sum, which is what makes the genetic search fast.
 */

export type CostMetric = 'size' | 'bitops' | 'latency';

/** What the cost formulas need to know of one quantizable layer. Plain data (JSON-serialisable). */
export interface LayerCostInfo {
  readonly name: string;
  /** Weight elements (the bias is not counted here). */
  readonly weights: number;
  /** Output channels: the weight grid has one scale and one zero point per channel. */
  readonly channels: number;
  /** Bias elements; stored at 32 bits whatever the weight bits (int32 behind a quantized input, else float). */
  readonly bias: number;
  /** Multiply-accumulates per image; null when the model's shapes could not be inferred. */
  readonly macs: number | null;
}

/** A budget on one metric, in its base unit: bytes, BitOPs, or milliseconds. */
export interface Budget {
  readonly metric: CostMetric;
  readonly value: number;
}

export class CostError extends Error {
  override name = 'CostError';
}

/** Bytes of one per-channel scale (float32). */
export const SCALE_BYTES = 4;

/** Bytes of one zero point: the export stores 2- to 4-bit grids' zero points as int4, wider ones as int8. */
export function zeroPointBytes(bits: Bits): number {
  return bits > 4 ? 1 : 0.5;
}

/** Per-layer cost facts of a canonical (BN-folded) model; MACs from static shape inference at batch 1. */
export function layerCostInfo(model: ModelProto, layers: readonly QuantLayer[]): LayerCostInfo[] {
  const macs = new Map(summarizeModel(model).layers.map((l) => [l.name, l.macs]));
  const inits = new Map<string, TensorProto>((model.graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  return layers.map((l) => {
    const weights = elementCount(l.weightDims);
    const bias = l.bias ? elementCount(inits.get(l.bias)?.dims ?? [l.weightDims[l.channelAxis] ?? 0]) : 0;
    return { name: l.name, weights, channels: l.weightDims[l.channelAxis] ?? 1, bias, macs: macs.get(l.name) ?? null };
  });
}

/**
 * Bytes of one layer at `bits`: weights packed at `bits` each (nominal: the QDQ export keeps 2- and
 * 3-bit codes in 4-bit containers, as ONNX has no narrower type most runtimes load), one float32
 * scale and one zero point per output channel, and the bias at 32 bits.
 */
export function layerSizeBytes(l: LayerCostInfo, bits: Bits): number {
  return (l.weights * bits) / 8 + l.channels * (SCALE_BYTES + zeroPointBytes(bits)) + l.bias * 4;
}

/** Bit operations of one layer per image: MACs · weight bits · activation bits (32 for float activations). */
export function layerBitOps(l: LayerCostInfo, wbits: Bits, abits: Bits | null): number {
  if (l.macs === null) throw new CostError(`the MACs of layer "${l.name}" are unknown (the model's input shape is not static), so BitOPs cannot be counted; use a size or latency budget`);
  return l.macs * wbits * (abits ?? 32);
}

/**
 * Per-layer latency in milliseconds by bit width, measured on one device, or brought as JSON:
 * `{"kind": "lowbit-latency-table", "version": 1, "unit": "ms", "layers": {"conv1": {"2": 0.11, "4": 0.11, "8": 0.09}}}`.
 */
export interface LatencyTable {
  readonly kind: 'lowbit-latency-table';
  readonly version: 1;
  readonly unit: 'ms';
  /** Where it was measured (free text). */
  readonly device: string;
  /** Images per timed run, and the activation bits of the one-layer models (null: float activations). */
  readonly batch?: number;
  readonly abits?: Bits | null;
  readonly layers: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** Checks a latency table read from a file against the layers and bit widths a search needs; says what is missing. */
export function parseLatencyTable(value: unknown, layers: readonly string[], bits: readonly Bits[]): LatencyTable {
  if (typeof value !== 'object' || value === null) throw new CostError('a latency table must be a JSON object');
  const v = value as Record<string, unknown>;
  const table = v.layers;
  if (typeof table !== 'object' || table === null) throw new CostError('a latency table needs "layers": {layer name: {bits: milliseconds}}');
  const t = table as Record<string, unknown>;
  for (const name of layers) {
    const row = t[name];
    if (typeof row !== 'object' || row === null) throw new CostError(`the latency table has no row for layer "${name}"`);
    for (const b of bits) {
      const ms = (row as Record<string, unknown>)[String(b)];
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new CostError(`the latency table has no ${b}-bit time for layer "${name}" (a non-negative number of milliseconds)`);
    }
  }
  return {
    kind: 'lowbit-latency-table',
    version: 1,
    unit: 'ms',
    device: typeof v.device === 'string' ? v.device : 'unknown',
    ...(typeof v.batch === 'number' ? { batch: v.batch } : {}),
    ...(v.abits === null || typeof v.abits === 'number' ? { abits: v.abits as Bits | null } : {}),
    layers: t as Record<string, Record<string, number>>,
  };
}

/** One layer's latency at `bits` from a table. */
export function layerLatencyMs(table: LatencyTable, layer: string, bits: Bits): number {
  const ms = table.layers[layer]?.[String(bits)];
  if (ms === undefined) throw new CostError(`the latency table has no ${bits}-bit time for layer "${layer}"`);
  return ms;
}

export interface CostContext {
  readonly layers: readonly LayerCostInfo[];
  /** Activation bits for BitOPs; null means float activations (counted as 32 bits). */
  readonly abits: Bits | null;
  /** Needed for the latency metric. */
  readonly latency?: LatencyTable | null;
}

/** One layer's cost at `bits` under `metric`, in the metric's base unit. */
export function layerCost(metric: CostMetric, ctx: CostContext, index: number, bits: Bits): number {
  const l = ctx.layers[index]!;
  if (metric === 'size') return layerSizeBytes(l, bits);
  if (metric === 'bitops') return layerBitOps(l, bits, ctx.abits);
  if (!ctx.latency) throw new CostError('a latency budget needs a latency table (measured, or given as JSON)');
  return layerLatencyMs(ctx.latency, l.name, bits);
}

/** cost[layer][k]: the cost of each layer at each candidate bit width `bits[k]`. */
export function costMatrix(metric: CostMetric, ctx: CostContext, bits: readonly Bits[]): number[][] {
  return ctx.layers.map((_, i) => bits.map((b) => layerCost(metric, ctx, i, b)));
}

/** A configuration's total cost: the sum over layers. */
export function configCost(metric: CostMetric, ctx: CostContext, layerBits: Readonly<Record<string, Bits>>): number {
  return ctx.layers.reduce((acc, l, i) => {
    const b = layerBits[l.name];
    if (b === undefined) throw new CostError(`the configuration gives no bits for layer "${l.name}"`);
    return acc + layerCost(metric, ctx, i, b);
  }, 0);
}

/** Every metric that can be computed for a configuration (latency only with a table; BitOPs only with MACs). */
export interface CostSummary {
  readonly sizeBytes: number;
  readonly bitops: number | null;
  readonly latencyMs: number | null;
}

export function costSummary(ctx: CostContext, layerBits: Readonly<Record<string, Bits>>): CostSummary {
  return {
    sizeBytes: configCost('size', ctx, layerBits),
    bitops: ctx.layers.every((l) => l.macs !== null) ? configCost('bitops', ctx, layerBits) : null,
    latencyMs: ctx.latency ? configCost('latency', ctx, layerBits) : null,
  };
}

/** The same bit width for every layer, as a `layerBits` map. */
export function uniformBits(layers: readonly { readonly name: string }[], bits: Bits): Record<string, Bits> {
  return Object.fromEntries(layers.map((l) => [l.name, bits]));
}

/** Display units of the command line and the studio: MB (10⁶ bytes), GBitOPs (10⁹), ms. */
export const METRIC_UNITS: Readonly<Record<CostMetric, { readonly unit: string; readonly scale: number }>> = {
  size: { unit: 'MB', scale: 1e6 },
  bitops: { unit: 'GBitOPs', scale: 1e9 },
  latency: { unit: 'ms', scale: 1 },
};
