import type { ModelProto } from '../onnx/schema';
import { scratch32 } from '../tensor/buffer-pool';
import { DataType } from '../onnx/schema';
import type { ImageBatches } from '../data/batches';
import { encodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import { cooperative, type Progress } from '../events';
import { rng } from '../random';
import { createRowCache, type CacheStorage, type RowCache, type SpillStore } from './row-cache';

/** How a run keeps its calibration caches (row-cache.ts), and where it may spill them. */
export interface CacheChoice {
  readonly storage: CacheStorage;
  readonly spill?: SpillStore;
}

export interface Range {
  min: number;
  max: number;
}

/** The model with extra graph outputs, the only way to read intermediate tensors through ONNX Runtime. */
export function withOutputs(model: ModelProto, names: readonly string[]): ModelProto {
  const graph = model.graph!;
  const existing = new Set((graph.output ?? []).map((o) => o.name));
  const extra = names.filter((n) => !existing.has(n)).map((name) => ({ name, type: { tensorType: { elemType: DataType.FLOAT } } }));
  return { ...model, graph: { ...graph, output: [...(graph.output ?? []), ...extra] } };
}

/**
 * Bytes of requested outputs that one ORT run of a range pass may return. Min and max do not
 * depend on how a batch is split, so large models run a batch a few images at a time: ResNet-50's
 * 49 activation sites at 224×224 take 37 MB an image, 1.2 GB for a batch of 32, which ORT-web
 * holds in its WASM heap (which never shrinks) and copies out to JS, in a tab of about 4 GB.
 */
const RUN_OUTPUT_BYTES = 128 * 2 ** 20;

/** Whether the model's first input has a free batch dimension, so that a batch can be run in slices. */
function hasDynamicBatch(model: ModelProto): boolean {
  const graph = model.graph!;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const input = (graph.input ?? []).find((i) => !inits.has(i.name));
  const dim = input?.type?.tensorType?.shape?.dim?.[0];
  return !!dim && typeof dim.dimValue !== 'number';
}

/**
 * Min and max of each named tensor over the calibration images. Runs without graph optimisation,
 * as ONNX Runtime's own calibrator does, so no fusion swallows a tensor we asked for.
 */
export async function collectRanges(model: ModelProto, tensors: readonly string[], images: ImageBatches, onProgress?: Progress, signal?: AbortSignal, runBytes = RUN_OUTPUT_BYTES): Promise<Map<string, Range>> {
  const ranges = new Map<string, Range>(tensors.map((t) => [t, { min: Infinity, max: -Infinity }]));
  if (tensors.length === 0) return ranges;
  const session = await ModelSession.create(encodeModel(withOutputs(model, tensors)), 'none');
  const pace = cooperative(signal);
  // images per ORT run: the whole batch until the first image's outputs are measured (a model with a fixed batch size always takes it whole)
  let slice = hasDynamicBatch(model) ? 1 : Infinity;
  try {
    for (let b = 0; b < images.batches; b++) {
      await pace();
      const { data, shape } = await images.batch(b);
      const n = shape[0]!;
      const per = data.length / n;
      for (let start = 0; start < n; ) {
        const k = Math.min(slice, n - start);
        const outs = await session.run(k === n ? data : data.slice(start * per, (start + k) * per), [k, ...shape.slice(1)], tensors);
        let bytes = 0;
        for (const [name, t] of outs) {
          bytes += t.data.byteLength;
          const r = ranges.get(name)!;
          for (let i = 0; i < t.data.length; i++) {
            const v = t.data[i]!;
            if (v < r.min) r.min = v;
            if (v > r.max) r.max = v;
          }
        }
        if (slice === 1 && start === 0 && b === 0) slice = Math.max(1, Math.floor(runBytes / Math.max(1, bytes)));
        start += k;
      }
      onProgress?.(b + 1, images.batches);
    }
  } finally {
    await session.release();
  }
  return ranges;
}

/** A captured tensor over the whole calibration set: batches concatenated along axis 0. */
export interface Captured {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * Values of the named tensors for every calibration image, for reconstruction caches (layer
 * inputs and FP targets). Memory grows with images × tensor size: callers pick what to capture.
 */
export async function captureTensors(model: ModelProto, tensors: readonly string[], images: ImageBatches, signal?: AbortSignal): Promise<Map<string, Captured>> {
  const parts = new Map<string, { dims: readonly number[]; data: Float32Array }[]>(tensors.map((t) => [t, []]));
  const session = await ModelSession.create(encodeModel(withOutputs(model, tensors)), 'none');
  const pace = cooperative(signal);
  try {
    for (let b = 0; b < images.batches; b++) {
      await pace();
      const { data, shape } = await images.batch(b);
      for (const [name, t] of await session.run(data, shape, tensors)) parts.get(name)!.push(t);
    }
  } finally {
    await session.release();
  }
  return new Map([...parts].map(([name, list]) => [name, concatBatches(list.map((p) => ({ shape: p.dims, data: p.data })))]));
}

/**
 * Like captureTensors, but each batch goes straight into a row cache in `storage` (float16 and
 * spilled caches never hold the whole set in float32, not even while capturing).
 */
export async function captureRows(model: ModelProto, tensors: readonly string[], images: ImageBatches, caches: CacheChoice, signal?: AbortSignal): Promise<Map<string, RowCache>> {
  const out = new Map<string, RowCache>();
  const session = await ModelSession.create(encodeModel(withOutputs(model, tensors)), 'none');
  const pace = cooperative(signal);
  try {
    let row = 0;
    for (let b = 0; b < images.batches; b++) {
      await pace();
      const { data, shape } = await images.batch(b);
      for (const [name, t] of await session.run(data, shape, tensors)) {
        let cache = out.get(name);
        if (!cache) {
          cache = await createRowCache([images.count, ...t.dims.slice(1)], caches.storage, caches.spill);
          out.set(name, cache);
        }
        cache.write(row, t.data);
      }
      row += shape[0]!;
    }
  } catch (e) {
    for (const c of out.values()) c.close();
    throw e;
  } finally {
    await session.release();
  }
  return out;
}

/** Batches joined along axis 0. */
export function concatBatches(parts: readonly { readonly shape: readonly number[]; readonly data: Float32Array }[]): Captured {
  const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
  let o = 0;
  for (const p of parts) {
    data.set(p.data, o);
    o += p.data.length;
  }
  const n = parts.reduce((a, p) => a + (p.shape[0] ?? 1), 0);
  return { shape: [n, ...(parts[0]?.shape.slice(1) ?? [])], data };
}

/** Rows `idx` of a cache (a reconstruction batch), into `into` when given. */
export function gatherRows(t: Captured, idx: readonly number[], into?: Float32Array): { shape: number[]; data: Float32Array } {
  const per = t.data.length / t.shape[0]!;
  const out = into ?? scratch32(idx.length * per);
  idx.forEach((i, k) => out.set(t.data.subarray(i * per, (i + 1) * per), k * per));
  return { shape: [idx.length, ...t.shape.slice(1)], data: out };
}

/** What step-size searches read of one activation: its range and a bounded random sample of its values. */
export interface ActivationSample extends Range {
  readonly values: Float32Array;
}

/**
 * Range and a uniform random sample (reservoir, at most `perTensor` values) of each named tensor
 * over the first `maxImages` calibration images: BRECQ initialises activation steps from 64
 * images, and a bounded sample keeps the search's memory flat on large models.
 */
export async function sampleActivations(
  model: ModelProto,
  tensors: readonly string[],
  images: ImageBatches,
  { maxImages = 64, perTensor = 1 << 15, seed = 0 }: { maxImages?: number; perTensor?: number; seed?: number } = {},
  signal?: AbortSignal,
): Promise<Map<string, ActivationSample>> {
  const out = new Map<string, { min: number; max: number; values: Float32Array; seen: number }>(tensors.map((t) => [t, { min: Infinity, max: -Infinity, values: new Float32Array(perTensor), seen: 0 }]));
  if (tensors.length === 0) return new Map();
  const rand = rng(seed + 7);
  const session = await ModelSession.create(encodeModel(withOutputs(model, tensors)), 'none');
  const pace = cooperative(signal);
  try {
    let used = 0;
    for (let b = 0; b < images.batches && used < maxImages; b++) {
      await pace();
      const { data, shape } = await images.batch(b);
      const take = Math.min(shape[0]!, maxImages - used);
      used += take;
      for (const [name, t] of await session.run(data, shape, tensors)) {
        const s = out.get(name)!;
        const n = (t.data.length / (t.dims[0] ?? 1)) * take;
        for (let i = 0; i < n; i++) {
          const v = t.data[i]!;
          if (v < s.min) s.min = v;
          if (v > s.max) s.max = v;
          if (s.seen < perTensor) s.values[s.seen] = v;
          else {
            const j = Math.floor(rand() * (s.seen + 1));
            if (j < perTensor) s.values[j] = v;
          }
          s.seen++;
        }
      }
    }
  } finally {
    await session.release();
  }
  return new Map([...out].map(([k, s]) => [k, { min: s.min, max: s.max, values: s.values.subarray(0, Math.min(s.seen, perTensor)) }]));
}
