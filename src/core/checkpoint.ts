import type { QuantizedWeight } from './export/qdq';
import type { QuantLayer } from './graph/layers';
import { PER_TENSOR, type Bits, type QuantGranularity, type QuantParams } from './quant/quantizer';
import type { QuantPlan } from './plan';
import type { BlockMetrics } from './methods/reconstruct';

/**
 * What a block-wise run has finished, enough to resume it: the weights of the blocks done (integer
 * codes and their grids) and the activation parameters learned so far. Saved after every block;
 * a resumed run skips those blocks and, with the same plan and seed, ends with the same numbers
 * as an uninterrupted one (every block seeds its own random stream).
 */
export interface Checkpoint {
  readonly version: 1;
  /** The plan and model it belongs to; a checkpoint of another run is ignored. */
  readonly key: string;
  readonly blocksDone: number;
  readonly weights: readonly QuantizedWeight[];
  readonly activations: ReadonlyMap<string, QuantParams>;
  readonly metrics: readonly BlockMetrics[];
}

/** Where checkpoints live (a folder for the CLI, IndexedDB in the browser): text in, text out. */
export interface CheckpointStore {
  load(): Promise<string | null>;
  save(text: string): Promise<void>;
}

/** Identifies a run: the plan's fields and the model's size and a cheap hash of its bytes. */
export function checkpointKey(plan: QuantPlan, model: Uint8Array): string {
  let h = 2166136261;
  for (let i = 0; i < model.length; i += Math.max(1, Math.floor(model.length / 65536))) h = Math.imul(h ^ model[i]!, 16777619) >>> 0;
  return JSON.stringify({ plan, bytes: model.length, hash: h });
}

interface ParamsJson {
  bits: number;
  signed: boolean;
  symmetric: boolean;
  granularity?: QuantGranularity;
  /** Checkpoints written before per-group weights: the channel axis, or null per tensor. */
  axis?: number | null;
  scale: number[];
  zeroPoint: number[];
  offset?: number[];
}

const paramsToJson = (p: QuantParams): ParamsJson => ({ bits: p.bits, signed: p.signed, symmetric: p.symmetric, granularity: p.granularity, scale: Array.from(p.scale), zeroPoint: Array.from(p.zeroPoint), ...(p.offset ? { offset: Array.from(p.offset) } : {}) });
const paramsFromJson = (p: ParamsJson): QuantParams => ({
  bits: p.bits as Bits,
  signed: p.signed,
  symmetric: p.symmetric,
  granularity: p.granularity ?? (p.axis === null || p.axis === undefined ? PER_TENSOR : { kind: 'channel', axis: p.axis }),
  scale: Float32Array.from(p.scale),
  zeroPoint: Int32Array.from(p.zeroPoint),
  ...(p.offset ? { offset: Float32Array.from(p.offset) } : {}),
});

/** Codes fit in a byte (2–8 bits): base64 of int8/uint8 keeps a checkpoint near the model's size. */
function codesToText(c: Int32Array, signed: boolean): string {
  const bytes = signed ? new Uint8Array(Int8Array.from(c).buffer) : Uint8Array.from(c);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function codesFromText(t: string, signed: boolean): Int32Array {
  const bin = atob(t);
  const bytes = Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
  return signed ? Int32Array.from(new Int8Array(bytes.buffer)) : Int32Array.from(bytes);
}

export function serializeCheckpoint(c: Checkpoint): string {
  return JSON.stringify({
    version: c.version,
    key: c.key,
    blocksDone: c.blocksDone,
    weights: c.weights.map((w) => ({ layer: w.layer.name, params: paramsToJson(w.params), codes: codesToText(w.codes, w.params.signed) })),
    activations: [...c.activations].map(([t, p]) => [t, paramsToJson(p)]),
    metrics: c.metrics.map((m) => ({ ...m, sqnrDb: Number.isFinite(m.sqnrDb) ? m.sqnrDb : null })),
  });
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Reads a checkpoint back, re-linking weights to this model's layers; refuses one that does not fit. */
export function parseCheckpoint(text: string, layers: readonly QuantLayer[]): Checkpoint {
  let v: { version: number; key: string; blocksDone: number; weights: { layer: string; params: ParamsJson; codes: string }[]; activations: [string, ParamsJson][]; metrics: (Omit<BlockMetrics, 'sqnrDb'> & { sqnrDb: number | null })[] };
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    throw new CheckpointError('the checkpoint file is not valid JSON');
  }
  if (v.version !== 1 || typeof v.key !== 'string' || !Number.isInteger(v.blocksDone) || !Array.isArray(v.weights) || !Array.isArray(v.activations)) throw new CheckpointError('the checkpoint file is not a Lowbit Studio checkpoint');
  const byName = new Map(layers.map((l) => [l.name, l]));
  const weights = v.weights.map((w) => {
    const layer = byName.get(w.layer);
    if (!layer) throw new CheckpointError(`the checkpoint names layer "${w.layer}", which this model does not have`);
    const codes = codesFromText(w.codes, w.params.signed);
    if (codes.length !== layer.weightDims.reduce((a, b) => a * b, 1)) throw new CheckpointError(`the checkpoint's codes for "${w.layer}" do not match its shape`);
    return { layer, codes, params: paramsFromJson(w.params) };
  });
  const metrics = (v.metrics ?? []).map((m) => ({ ...m, sqnrDb: m.sqnrDb ?? Infinity }));
  return { version: 1, key: v.key, blocksDone: v.blocksDone, weights, activations: new Map(v.activations.map(([t, p]) => [t, paramsFromJson(p)])), metrics };
}
