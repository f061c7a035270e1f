import { conv2dAttrs, conv2dForward } from '../../cpu/reference/conv2d';
import { rng } from '../../../random';
import { createWebGpuBackend } from '../backend';
import { acquireWebGpu } from '../device';
import { runParity, type ParityReport } from './parity';
import { runConvBench, type BenchRow } from './bench';
import { tinyResNet } from '../../../testing/tiny-resnet';
import { compareTraces, reconstructionInput, traceRun, type TraceComparison } from '../../../testing/reconstruction-parity';

/*
 * Entry of webgpu-check.html: exposes the parity suite, the reconstruction loop against the CPU
 * engine (with a device loss mid-run), and the convolution benchmark to
 * Playwright (e2e/webgpu.spec.ts) and to bench/webgpu.ts as `globalThis.lowbitWebGpu`.
 * No DOM: results go back through the returned promises.
 */

interface WorkerResult {
  ok: boolean;
  reason?: string;
  message?: string;
  adapter?: unknown;
  maxErr?: number;
}

async function acquire() {
  const r = await acquireWebGpu({ allowSoftwareAdapter: true });
  if (!r.ok) throw new Error(`no WebGPU: ${r.reason}: ${r.message}`);
  return r;
}

async function parity(only?: string): Promise<ParityReport> {
  const r = await acquire();
  try {
    return await runParity(r.device, r.adapter, only);
  } finally {
    r.device.destroy();
  }
}

async function bench(o: { quick?: boolean } = {}): Promise<{ adapter: unknown; rows: BenchRow[] }> {
  const r = await acquire();
  try {
    return { adapter: r.adapter, rows: await runConvBench(r.device, r.adapter, o) };
  } finally {
    r.device.destroy();
  }
}

/**
 * The "no WebGPU" results callers fall back on: no navigator.gpu, no adapter, and a software
 * adapter refused by default (this Chromium's SwiftShader is one).
 */
async function fallbacks(): Promise<Record<string, string>> {
  const noGpu = await acquireWebGpu({ gpu: null });
  const noAdapter = await acquireWebGpu({ gpu: { requestAdapter: () => Promise.resolve(null) } as unknown as GPU });
  const byDefault = await createWebGpuBackend();
  if (byDefault.ok) {
    byDefault.backend.dispose();
    byDefault.backend.device.destroy();
  }
  return {
    noGpu: noGpu.ok ? 'ok' : noGpu.reason,
    noAdapter: noAdapter.ok ? 'ok' : noAdapter.reason,
    byDefault: byDefault.ok ? `ok (${byDefault.adapter.architecture})` : `${byDefault.reason}: ${byDefault.message}`,
  };
}

/** WebGPU in a dedicated worker: one convolution against the reference. */
function inWorker(): Promise<WorkerResult> {
  const rand = rng(7);
  const x = Float32Array.from({ length: 108 }, () => rand() * 2 - 1);
  const w = Float32Array.from({ length: 108 }, () => rand() * 2 - 1);
  const ref = conv2dForward({ shape: [1, 3, 6, 6], data: Float64Array.from(x) }, { shape: [4, 3, 3, 3], data: Float64Array.from(w) }, null, conv2dAttrs({ pads: [1, 1, 1, 1] }));
  const worker = new Worker(new URL('./check-worker.ts', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
    worker.onmessage = (e: MessageEvent<WorkerResult & { y?: Float32Array }>) => {
      worker.terminate();
      const { y, ...rest } = e.data;
      if (!y) return resolve(rest);
      let diff = 0;
      let mag = 1e-3;
      ref.data.forEach((v, i) => {
        diff = Math.max(diff, Math.abs(v - y[i]!));
        mag = Math.max(mag, Math.abs(v));
      });
      resolve({ ...rest, maxErr: diff / mag });
    };
    worker.postMessage({ x, w });
  });
}

export interface ReconstructionCheck {
  readonly adapter: unknown;
  readonly comparison: TraceComparison;
  /** Where each block ran, as the run said. */
  readonly infos: string[];
  readonly warnings: string[];
  readonly ms: { readonly cpu: number; readonly webgpu: number };
}

/** A BRECQ weight pass on a small residual CNN, on the CPU engine and on WebGPU (reconstruct-backend.ts). */
async function reconstruction(): Promise<ReconstructionCheck> {
  const input = reconstructionInput(() => tinyResNet(4, { channels: 6, size: 8 }), [1, 8, 8], { iters: 50, seed: 4, lr: 1e-2, batch: 8 });
  const r = await createWebGpuBackend({ allowSoftwareAdapter: true });
  if (!r.ok) throw new Error(`no WebGPU: ${r.reason}: ${r.message}`);
  try {
    let t0 = performance.now();
    const cpu = await traceRun(input, null);
    const cpuMs = performance.now() - t0;
    t0 = performance.now();
    const gpu = await traceRun(input, r.backend);
    const gpuMs = performance.now() - t0;
    const nearest = await traceRun({ ...input, options: { ...input.options, iters: 0 } }, null);
    return { adapter: r.adapter, comparison: compareTraces(cpu, gpu, nearest), infos: gpu.infos, warnings: gpu.warnings, ms: { cpu: cpuMs, webgpu: gpuMs } };
  } finally {
    r.backend.dispose();
    r.backend.device.destroy();
  }
}

export interface DeviceLossCheck {
  readonly infos: string[];
  readonly warnings: string[];
  /** Codes shared with a run entirely on the CPU. */
  readonly sameCodes: number;
  readonly layers: number;
}

/** The same pass with the device destroyed during block b2: b2 and the blocks after it finish on the CPU. */
async function deviceLoss(): Promise<DeviceLossCheck> {
  const input = reconstructionInput(() => tinyResNet(4, { channels: 6, size: 8 }), [1, 8, 8], { iters: 50, seed: 4, lr: 1e-2, batch: 8 });
  const r = await createWebGpuBackend({ allowSoftwareAdapter: true });
  if (!r.ok) throw new Error(`no WebGPU: ${r.reason}: ${r.message}`);
  try {
    const gpu = await traceRun(input, r.backend, (e) => {
      if (e.type === 'loss' && e.layer === 'b2' && e.iter === 10) r.backend.device.destroy();
    });
    const cpu = await traceRun(input, null);
    const c = compareTraces(cpu, gpu);
    return { infos: gpu.infos, warnings: gpu.warnings, sameCodes: c.sameCodes, layers: gpu.codes.length };
  } finally {
    r.backend.dispose();
  }
}

(globalThis as { lowbitWebGpu?: unknown }).lowbitWebGpu = { parity, bench, inWorker, fallbacks, reconstruction, deviceLoss, ready: true };
