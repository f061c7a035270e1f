import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'bench/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ORT's WASM instances are large; one fork keeps memory flat on 2-core CI machines
    pool: 'forks',
    // the CLI and Chromium run the relaxed-SIMD kernels; tests run the same build
    execArgv: ['--experimental-wasm-relaxed-simd'],
    maxWorkers: 2,
  },
});
