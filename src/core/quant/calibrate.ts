import type { ModelProto } from '../onnx/schema';
import { DataType } from '../onnx/schema';
import type { ImageBatches } from '../data/batches';
import { encodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import { throwIfAborted, type Progress } from '../events';

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
 * Min and max of each named tensor over the calibration images. Runs without graph optimisation,
 * as ONNX Runtime's own calibrator does, so no fusion swallows a tensor we asked for.
 */
export async function collectRanges(model: ModelProto, tensors: readonly string[], images: ImageBatches, onProgress?: Progress, signal?: AbortSignal): Promise<Map<string, Range>> {
  const ranges = new Map<string, Range>(tensors.map((t) => [t, { min: Infinity, max: -Infinity }]));
  if (tensors.length === 0) return ranges;
  const session = await ModelSession.create(encodeModel(withOutputs(model, tensors)), 'none');
  try {
    for (let b = 0; b < images.batches; b++) {
      throwIfAborted(signal);
      const { data, shape } = await images.batch(b);
      const outs = await session.run(data, shape, tensors);
      for (const [name, t] of outs) {
        const r = ranges.get(name)!;
        for (let i = 0; i < t.data.length; i++) {
          const v = t.data[i]!;
          if (v < r.min) r.min = v;
          if (v > r.max) r.max = v;
        }
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
  try {
    for (let b = 0; b < images.batches; b++) {
      throwIfAborted(signal);
      const { data, shape } = await images.batch(b);
      for (const [name, t] of await session.run(data, shape, tensors)) parts.get(name)!.push(t);
    }
  } finally {
    await session.release();
  }
  const out = new Map<string, Captured>();
  for (const [name, list] of parts) {
    const total = list.reduce((a, p) => a + p.data.length, 0);
    const data = new Float32Array(total);
    let o = 0;
    for (const p of list) {
      data.set(p.data, o);
      o += p.data.length;
    }
    const n = list.reduce((a, p) => a + (p.dims[0] ?? 1), 0);
    out.set(name, { shape: [n, ...(list[0]?.dims.slice(1) ?? [])], data });
  }
  return out;
}
