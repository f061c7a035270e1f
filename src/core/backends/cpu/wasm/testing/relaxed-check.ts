/*
 * Runs the shared GEMM cases on the relaxed-SIMD build and prints one JSON line. Meant for a Node
 * started with --experimental-wasm-relaxed-simd (Node 20 does not enable relaxed SIMD by default):
 *   node --experimental-wasm-relaxed-simd --import tsx src/core/backends/cpu/wasm/testing/relaxed-check.ts
 * gemm.test.ts spawns it so the build Chromium uses is tested without changing vitest's config.
 */
import { createGemm } from '../gemm';
import { runAllCases } from './gemm-cases';

const gemm = await createGemm({ variant: 'relaxed' });
const result = runAllCases(gemm);
console.log(JSON.stringify({ variant: gemm.variant, ...result }));
process.exitCode = result.failures.length === 0 ? 0 : 1;
