/*
 * WebGPU device acquisition, for a page or a worker (both have `navigator.gpu`). Never throws:
 * callers get either a device or a reason, and fall back to the CPU backend on the latter.
 */

export interface WebGpuAdapterReport {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /**
   * A software adapter (SwiftShader, WARP). Chromium's SwiftShader is ~40× slower than the WASM
   * SIMD kernels (shared/docs/platform.md): fine for correctness tests, not for work.
   */
  readonly isFallbackAdapter: boolean;
  readonly features: readonly string[];
  /** The limits the device was created with (what this backend may rely on). */
  readonly limits: Readonly<Record<string, number>>;
}

export type NoWebGpuReason = 'no-navigator-gpu' | 'no-adapter' | 'software-adapter' | 'device-request-failed';

export type WebGpuAcquisition =
  | { readonly ok: true; readonly device: GPUDevice; readonly adapter: WebGpuAdapterReport }
  | { readonly ok: false; readonly reason: NoWebGpuReason; readonly message: string; readonly adapter?: WebGpuAdapterReport };

export interface AcquireOptions {
  /**
   * Accept a software (fallback) adapter. Default false: on such an adapter the CPU backend is
   * faster, so callers get `software-adapter` and fall back. Tests set it to run on SwiftShader.
   */
  readonly allowSoftwareAdapter?: boolean;
  /** Default 'high-performance': reconstruction is long-running compute. */
  readonly powerPreference?: GPUPowerPreference;
  /**
   * Upper bounds on the requested buffer limits; each is requested up to the adapter's own limit.
   * Default: the adapter's limits (large layers need large storage bindings).
   */
  readonly maxStorageBufferBindingSize?: number;
  readonly maxBufferSize?: number;
  /** `navigator.gpu` to use; defaults to the global one (tests inject). */
  readonly gpu?: GPU | null;
}

/** The limits this backend asks for, each capped at the adapter's. */
const WANTED_LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
] as const;

function globalGpu(): GPU | null {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu ?? null;
}

function report(adapter: GPUAdapter, limits: GPUSupportedLimits): WebGpuAdapterReport {
  // `info` is the current API; older Chromium exposed isFallbackAdapter on the adapter itself
  const info = (adapter as { info?: GPUAdapterInfo }).info;
  const legacyFallback = (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const lim: Record<string, number> = {};
  for (const k of WANTED_LIMITS) lim[k] = Number(limits[k]);
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: info?.isFallbackAdapter === true || legacyFallback,
    features: [...adapter.features].sort(),
    limits: lim,
  };
}

export async function acquireWebGpu(o: AcquireOptions = {}): Promise<WebGpuAcquisition> {
  const gpu = o.gpu === undefined ? globalGpu() : o.gpu;
  if (!gpu) return { ok: false, reason: 'no-navigator-gpu', message: 'WebGPU is not available here (no navigator.gpu)' };
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: o.powerPreference ?? 'high-performance' });
  } catch (e) {
    return { ok: false, reason: 'no-adapter', message: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) return { ok: false, reason: 'no-adapter', message: 'WebGPU found no adapter' };
  const adapterReport = report(adapter, adapter.limits);
  if (adapterReport.isFallbackAdapter && !o.allowSoftwareAdapter) {
    return { ok: false, reason: 'software-adapter', message: `the only WebGPU adapter is a software one (${adapterReport.architecture || adapterReport.vendor || 'unknown'}); the CPU backend is faster`, adapter: adapterReport };
  }
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = Number(adapter.limits[k]);
  if (o.maxStorageBufferBindingSize !== undefined) requiredLimits.maxStorageBufferBindingSize = Math.min(requiredLimits.maxStorageBufferBindingSize!, o.maxStorageBufferBindingSize);
  if (o.maxBufferSize !== undefined) requiredLimits.maxBufferSize = Math.min(requiredLimits.maxBufferSize!, o.maxBufferSize);
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, label: 'lowbit-studio' });
  } catch (e) {
    return { ok: false, reason: 'device-request-failed', message: `requestDevice failed: ${(e as Error).message}`, adapter: adapterReport };
  }
  return { ok: true, device, adapter: report(adapter, device.limits) };
}
