import type { Emit } from '../events';
import { createWebGpuBackend } from './webgpu/backend';
import type { KernelBackend, TensorLike } from './webgpu/types';

/**
 * Where block reconstruction's weight loops run:
 * - 'wasm': the CPU engine (WASM SIMD kernels), everywhere;
 * - 'auto': WebGPU where a hardware adapter exists, else WASM;
 * - 'webgpu': WebGPU on any adapter, a software one included (slow: for checks), else WASM.
 * Either way a block whose ops WebGPU lacks, and every block after a device loss, runs on the CPU
 * (methods/reconstruct-backend.ts). Not part of the plan: both give the same codes up to float32
 * rounding.
 */
export type BackendChoice = 'wasm' | 'webgpu' | 'auto';

export interface OpenedBackend {
  /** Null: the CPU engine. */
  readonly backend: KernelBackend<TensorLike> | null;
  /** Releases the device (and its buffers). */
  close(): void;
}

const CPU: OpenedBackend = { backend: null, close: () => {} };

/**
 * Opens the backend `choice` names and says which one the run got and, on a fallback, why (an info
 * for 'auto', a warning for an explicit 'webgpu').
 */
export async function openBackend(choice: BackendChoice, emit: Emit): Promise<OpenedBackend> {
  if (choice === 'wasm') return CPU;
  const r = await createWebGpuBackend({ allowSoftwareAdapter: choice === 'webgpu' });
  if (!r.ok) {
    emit({ type: choice === 'auto' ? 'info' : 'warning', message: `block reconstruction on the CPU (WASM): ${r.message}` });
    return CPU;
  }
  const a = r.adapter;
  const name = [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  emit({ type: 'info', message: `block reconstruction on WebGPU (${name}${a.isFallbackAdapter ? ', a software adapter: slower than the CPU' : ''}); blocks with ops it lacks run on the CPU` });
  return {
    backend: r.backend,
    close: () => {
      r.backend.dispose();
      r.backend.device.destroy();
    },
  };
}
