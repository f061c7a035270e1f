/*
 * The CPU backend's WebAssembly module: SGEMM (gemm.ts), convolution on it (conv.ts), direct
 * depthwise convolution (depthwise.ts) and the activations fused into both (activation.ts). Built four ways by scripts/build-wasm.mjs: SIMD or relaxed
 * SIMD, each with private memory (one thread) or shared memory (a worker pool; see ../pool.ts).
 */
export { MR, NR, KC, MC, NC, WORKSPACE_BYTES, heapBase, sgemm, sgemmPart, im2col } from './gemm';
export { convScratchBytes, convForward, convInputGrad, convWeightGrad } from './conv';
export { dwScratchBytes, dwForward, dwInputGrad, dwWeightGrad } from './depthwise';
export { clampInPlace, clampGradInPlace } from './activation';
