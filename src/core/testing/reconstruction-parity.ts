import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { partitionModel } from '../graph/partition';
import type { ModelProto } from '../onnx/schema';
import type { ImageBatches } from '../data/batches';
import { randn, rng } from '../random';
import { WasmConvPool } from '../engine/conv-engine';
import type { KernelBackend, TensorLike } from '../backends/webgpu/types';
import type { PipelineEvent } from '../events';
import { reconstructWeights, type ReconstructionInput } from '../methods/reconstruct';
import { syntheticBatches } from './synthetic-batches';

/*
 * One test body for every backend: a BRECQ weight pass run on the CPU engine and on a
 * `KernelBackend`, and how far apart the two runs are. Node runs it with the CPU reference kernels
 * standing in for the GPU (methods/reconstruct-backend.test.ts); the WebGPU check page runs it
 * with WebGPU (e2e/webgpu.spec.ts).
 */


/** A block-granularity reconstruction of `model` at 3 bits (first layer kept at round-to-nearest, as BRECQ does) on synthetic images. */
export function reconstructionInput(make: () => ModelProto, inShape: readonly number[], options: ReconstructionInput['options']): ReconstructionInput {
  const { model } = canonicalize(make());
  const layers = findQuantLayers(model);
  return { model, layers, blocks: partitionModel(model, 'block').blocks, bitsFor: () => 3, scale: 'lp', weightGrid: 'asymmetric', skip: (l) => l.isFirst, calib: syntheticBatches(48, inShape, 3), convs: new WasmConvPool(1), options };
}

export interface RunTrace {
  readonly losses: { readonly layer: string; readonly iter: number; readonly rec: number; readonly reg: number; readonly beta: number | null }[];
  /** Per quantized layer, in order: name and codes. */
  readonly codes: { readonly layer: string; readonly codes: Int32Array }[];
  readonly infos: string[];
  readonly warnings: string[];
}

/** A BRECQ weight pass; `onEvent` sees every event as it happens (a test can act mid-run). */
export async function traceRun(input: ReconstructionInput, backend: KernelBackend<TensorLike> | null, onEvent?: (e: PipelineEvent) => void): Promise<RunTrace> {
  const trace: RunTrace = { losses: [], codes: [], infos: [], warnings: [] };
  const result = await reconstructWeights({ ...input, backend }, 'brecq', null, (e) => {
    if (e.type === 'loss') trace.losses.push({ layer: e.layer, iter: e.iter, rec: e.rec, reg: e.reg, beta: e.beta });
    if (e.type === 'info') trace.infos.push(e.message);
    if (e.type === 'warning') trace.warnings.push(e.message);
    onEvent?.(e);
  });
  for (const w of result.weights) trace.codes.push({ layer: w.layer.name, codes: w.codes });
  return trace;
}

export interface TraceComparison {
  /** Whether both runs reported the same blocks at the same iterations, and the same layers. */
  readonly sameSchedule: boolean;
  readonly points: number;
  /** Largest |a − b| / max(|a|, |b|, 1e-6) over reported losses and regularisers. */
  readonly maxRecErr: number;
  readonly maxRegErr: number;
  readonly betaMismatches: number;
  /** Share of hard-rounded codes that agree. */
  readonly sameCodes: number;
  /** Share of codes that differ from round-to-nearest's (the learning moved them), when given. */
  readonly moved: number | null;
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-6);

export function compareTraces(a: RunTrace, b: RunTrace, nearest?: RunTrace): TraceComparison {
  const sameSchedule = a.losses.length === b.losses.length && a.losses.every((e, i) => e.layer === b.losses[i]!.layer && e.iter === b.losses[i]!.iter) && a.codes.map((c) => c.layer).join() === b.codes.map((c) => c.layer).join();
  let maxRecErr = 0;
  let maxRegErr = 0;
  let betaMismatches = 0;
  a.losses.forEach((e, i) => {
    const f = b.losses[i];
    if (!f) return;
    maxRecErr = Math.max(maxRecErr, rel(e.rec, f.rec));
    maxRegErr = Math.max(maxRegErr, rel(e.reg, f.reg));
    if (e.beta !== f.beta) betaMismatches++;
  });
  const share = (x: RunTrace, y: RunTrace) => {
    let same = 0;
    let total = 0;
    x.codes.forEach((c, k) => c.codes.forEach((v, i) => {
      total++;
      if (v === y.codes[k]?.codes[i]) same++;
    }));
    return total ? same / total : 0;
  };
  return { sameSchedule, points: a.losses.length, maxRecErr, maxRegErr, betaMismatches, sameCodes: share(a, b), moved: nearest ? 1 - share(b, nearest) : null };
}
