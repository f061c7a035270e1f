import type { ModelSummary } from './graph/summary';
import { ADAROUND_ITERS, BLOCK_ITERS, DECOUPLEQ_BLOCK_ITERS, type QuantPlan } from './plan';
import { BYTES_IN_MEMORY, CACHE_STORAGES, type CacheStorage } from './quant/row-cache';

/**
 * What a run will cost before it starts: time, and the memory its calibration caches and engine
 * buffers take. From the model's shapes (MACs and output sizes per layer) and two throughputs
 * measured on this project's machine (bench/RESULTS.md): the reconstruction engine's effective
 * rate over a whole iteration, and ONNX Runtime's for captures and evaluation. Rough by design:
 * the point is "two minutes or two hours", "200 MB or 8 GB".
 */
export interface RunEstimate {
  readonly seconds: number;
  /** Calibration caches (block inputs, targets) for all calibration images, in memory. */
  readonly cacheBytes: number;
  /** The same caches on disk when they are spilled (row-cache.ts), else 0. */
  readonly spilledBytes: number;
  /** Engine working set at batch 32, and the model's own copies. */
  readonly workBytes: number;
  /** False when the shapes are unknown (a dynamic input): then only the model's size is counted. */
  readonly fromShapes: boolean;
}

/** Effective GFLOP/s of a reconstruction iteration (forward, both gradients, element-wise work, Adam), one thread. */
export const ENGINE_GFLOPS = 8;
/** ONNX Runtime Web's WASM backend on a batch, one thread. */
export const ORT_GFLOPS = 15;

const BATCH = 32;
const F32 = 4;

/** Methods whose caches can be kept in float16 or spilled (the block reconstructions); the others keep float32. */
export function cacheStoragesFor(plan: QuantPlan): readonly CacheStorage[] {
  return plan.method === 'brecq' || plan.method === 'qdrop' ? CACHE_STORAGES : ['float32'];
}

export function estimateRun(summary: ModelSummary, plan: QuantPlan, calibImages: number, valImages: number, storage: CacheStorage = 'float32'): RunEstimate {
  const layers = summary.layers;
  const modelBytes = summary.params * F32 * 3;
  const known = layers.every((l) => l.macs !== null && l.outputElements !== null);
  if (!known) return { seconds: NaN, cacheBytes: 0, spilledBytes: 0, workBytes: modelBytes, fromShapes: false };
  const byName = new Map(layers.map((l) => [l.name, l]));
  const blocks = summary.blocks ?? layers.map((l) => ({ id: l.name, kind: 'layer', layers: [l.name] }));
  const macsOf = (names: readonly string[]) => names.reduce((a, n) => a + (byName.get(n)?.macs ?? 0), 0);
  const outOf = (names: readonly string[]) => Math.max(0, ...names.map((n) => byName.get(n)?.outputElements ?? 0));
  const sumOut = (names: readonly string[]) => names.reduce((a, n) => a + (byName.get(n)?.outputElements ?? 0), 0);
  const totalMacs = summary.macs ?? macsOf(layers.map((l) => l.name));
  const ort = (macs: number, images: number) => (2 * macs * images) / (ORT_GFLOPS * 1e9);
  const engine = (flops: number) => flops / (ENGINE_GFLOPS * 1e9);

  // three evaluations (float, simulated, fused) and one calibration pass
  let seconds = ort(totalMacs, 3 * valImages + calibImages);
  let cacheBytes = 0;
  let spilledBytes = 0;
  let workBytes = modelBytes;
  const all = layers.map((l) => l.name);
  switch (plan.method) {
    case 'rtn':
      break;
    case 'adaround': {
      const iters = plan.iters ?? ADAROUND_ITERS;
      for (const l of layers) seconds += engine(iters * 4 * (l.macs ?? 0) * BATCH) + ort(totalMacs, 2 * calibImages);
      cacheBytes = 2 * outOf(all) * F32 * calibImages;
      workBytes += 4 * outOf(all) * F32 * BATCH;
      break;
    }
    case 'brecq':
    case 'qdrop': {
      const iters = plan.iters ?? BLOCK_ITERS;
      const actIters = plan.method === 'brecq' && plan.abits !== null ? (plan.actIters ?? 5000) : 0;
      for (const b of blocks) seconds += engine((iters * 6 + actIters * 4) * macsOf(b.layers) * BATCH) + ort(totalMacs, 2 * calibImages);
      const copies = (plan.method === 'qdrop' ? 3 : 2) + (plan.fisher ? 1 : 0);
      const values = copies * Math.max(0, ...blocks.map((b) => outOf(b.layers))) * calibImages;
      cacheBytes = values * BYTES_IN_MEMORY[storage];
      if (storage === 'spill') spilledBytes = values * 2;
      workBytes += 4 * Math.max(0, ...blocks.map((b) => sumOut(b.layers))) * F32 * BATCH;
      break;
    }
    case 'nwq': {
      const iters = plan.iters ?? BLOCK_ITERS;
      seconds += engine(iters * 6 * totalMacs * BATCH) + ort(totalMacs, calibImages);
      cacheBytes = blocks.reduce((a, b) => a + outOf(b.layers), 0) * F32 * calibImages;
      workBytes += 4 * sumOut(all) * F32 * BATCH;
      break;
    }
    case 'decoupleq': {
      const iters = plan.iters ?? DECOUPLEQ_BLOCK_ITERS;
      for (const b of blocks) seconds += engine(iters * 6 * macsOf(b.layers) * BATCH) + ort(totalMacs, 3 * calibImages);
      // the float64 solves: a few passes of n² per row, n the fan-in
      for (const l of layers) {
        const n = l.weightShape.slice(1).reduce((a, d) => a * d, 1);
        seconds += (8 * n * n * (l.weightShape[0] ?? 1)) / 1e9;
      }
      cacheBytes = 2 * outOf(all) * F32 * calibImages;
      workBytes += 4 * Math.max(0, ...blocks.map((b) => sumOut(b.layers))) * F32 * BATCH;
      break;
    }
  }
  return { seconds, cacheBytes, spilledBytes, workBytes, fromShapes: true };
}

/** The most calibration images whose caches fit in `budgetBytes` with the working set, at least 32 when any fit. */
export function calibImagesWithin(summary: ModelSummary, plan: QuantPlan, calibImages: number, valImages: number, budgetBytes: number, storage: CacheStorage = 'float32'): number {
  const e = estimateRun(summary, plan, calibImages, valImages, storage);
  if (!e.fromShapes || e.cacheBytes + e.workBytes <= budgetBytes || e.cacheBytes === 0) return calibImages;
  const perImage = e.cacheBytes / calibImages;
  return Math.max(0, Math.min(calibImages, Math.floor((budgetBytes - e.workBytes) / perImage)));
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown';
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function formatBytes(bytes: number): string {
  if (bytes === 0) return '0 MB';
  return bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / (1 << 20)))} MB`;
}
