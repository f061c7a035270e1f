/**
 * The WebGPU backend: WGSL forward and backward kernels for reconstruction (implicit-GEMM and
 * depthwise convolution, tiled GEMM, element-wise ops, fake quantization with LSQ, AdaRound,
 * pooling, losses, Adam) behind `KernelBackend`, which the CPU reference kernels also implement.
 *
 *   const r = await createWebGpuBackend();
 *   const backend: KernelBackend<any> = r.ok ? r.backend : new ReferenceBackend(new Float32Array(0));
 */
export * from './types';
export { acquireWebGpu, type AcquireOptions, type NoWebGpuReason, type WebGpuAcquisition, type WebGpuAdapterReport } from './device';
export { GpuTensor, WebGpuBackend, createWebGpuBackend, type WebGpuBackendOptions, type WebGpuBackendResult } from './backend';
export { ReferenceBackend } from './reference-backend';
export type { PoolStats } from './pool';
export { TILES, type GemmOptions, type TileConfig } from './skeletons';
