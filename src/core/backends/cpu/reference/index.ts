/**
 * The plain-TypeScript reference kernels: the correctness oracle that every fast backend (WASM SIMD,
 * WebGPU) is tested against. Clear loops, float64 accumulation, no tuning.
 */
export * from './nd';
export * from './conv2d';
export * from './gemm';
export * from './elementwise';
export * from './pooling';
export * from './quant-grid';
export * from './fake-quant';
export * from './adaround';
export * from './losses';
