import { conv2dAttrs, conv2dForward } from '../../cpu/reference/conv2d';
import { rng } from '../../../random';
import { createWebGpuBackend } from '../backend';
import { acquireWebGpu } from '../device';
import { runParity, type ParityReport } from './parity';
import { runConvBench, type BenchRow } from './bench';

/*
 * Entry of webgpu-check.html: exposes the parity suite and the convolution benchmark to
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

(globalThis as { lowbitWebGpu?: unknown }).lowbitWebGpu = { parity, bench, inWorker, fallbacks, ready: true };
