/**
 * Throughput of the WebGPU convolution kernels (src/core/backends/webgpu) in Chromium: forward,
 * forward with AdaRound's soft rounding fused into the weight load, input gradient and weight
 * gradient, per layer shape. Prints a Markdown table.
 *
 *   npx tsx bench/webgpu.ts            builds the app if dist/ has no webgpu-check.html, serves it, runs
 *   npx tsx bench/webgpu.ts --full     the large (ResNet/MobileNet-sized) shapes even on a software adapter
 *   npx tsx bench/webgpu.ts --quick    the small shapes even on a GPU
 *
 * On this project's machines WebGPU is SwiftShader, a CPU emulation (shared/docs/platform.md): the
 * small shapes run by default there, and the numbers only say that the kernels run, not how fast
 * they are on a GPU (SwiftShader's workgroup barriers are very slow, and these kernels are written
 * for GPUs, where shared-memory tiling pays). Timings are wall-clock per pass, best of 3 batches,
 * each ended by waiting for the queue to drain.
 */
import { chromium } from '@playwright/test';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { BenchRow } from '../src/core/backends/webgpu/testing/bench';

const PORT = 4179;
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const quick = process.argv.includes('--quick') ? true : process.argv.includes('--full') ? false : undefined;

if (!existsSync('dist/webgpu-check.html')) {
  console.error('building the app (dist/ has no webgpu-check.html)…');
  execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], { stdio: 'inherit' });
}
const server = spawn('npx', ['vite', 'preview', '--port', String(PORT), '--strictPort'], { stdio: ['ignore', 'pipe', 'inherit'] });
const stop = () => server.kill();
process.on('exit', stop);
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('vite preview did not start in 30 s')), 30_000);
  server.stdout!.on('data', (d: Buffer) => {
    if (String(d).includes(String(PORT))) {
      clearTimeout(timer);
      resolve();
    }
  });
});

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--enable-unsafe-webgpu'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`http://localhost:${PORT}/webgpu-check.html`);
  type Check = { lowbitWebGpu?: { ready: boolean; bench(o: { quick?: boolean }): Promise<{ adapter: { vendor: string; architecture: string; isFallbackAdapter: boolean }; rows: BenchRow[] }> } };
  await page.waitForFunction(() => (globalThis as Check).lowbitWebGpu?.ready === true);
  const before = loadavg();
  const { adapter, rows } = await page.evaluate((q) => (globalThis as Check).lowbitWebGpu!.bench(q === undefined ? {} : { quick: q }), quick);
  const soft = adapter.isFallbackAdapter;
  console.log(`adapter: ${adapter.vendor} ${adapter.architecture}${soft ? ' (software: numbers are only indicative)' : ''}; machine: ${cpus()[0]?.model} ×${cpus().length}; load average ${before.map((l) => l.toFixed(2)).join(' ')} → ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('| layer | pass | GFLOP | ms | GFLOP/s | plan |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.layer} | ${r.pass} | ${r.gflop.toFixed(4)} | ${r.ms.toFixed(2)} | ${r.gflops.toFixed(3)} | ${r.plan} |`);
} finally {
  await browser.close();
  stop();
}
