import { test, expect, type Page } from '@playwright/test';
import type { ParityReport } from '../src/core/backends/webgpu/testing/parity';

/*
 * The WebGPU backend's kernels, run in Chromium's WebGPU (SwiftShader here, a GPU elsewhere) on
 * webgpu-check.html, against the float64 CPU reference kernels: every output of every case within
 * 1e-4 of the reference's largest magnitude. No WebGPU is a failure, not a skip: the flags in
 * playwright.config.ts give this Chromium an adapter.
 */

interface CheckPage {
  ready: boolean;
  parity(only?: string): Promise<ParityReport>;
  inWorker(): Promise<{ ok: boolean; reason?: string; message?: string; adapter?: { architecture: string }; maxErr?: number }>;
  fallbacks(): Promise<Record<string, string>>;
}
/** What webgpu-check.html puts on globalThis (src/core/backends/webgpu/testing/check-page.ts). */
type WithCheck = typeof globalThis & { lowbitWebGpu?: CheckPage };

function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (!['data:', 'blob:'].includes(url.protocol) && url.origin !== 'http://localhost:4173') errors.push(`request to another origin: ${r.url()}`);
  });
  return errors;
}

async function openCheckPage(page: Page): Promise<void> {
  await page.goto('/webgpu-check.html');
  await page.waitForFunction(() => (globalThis as WithCheck).lowbitWebGpu?.ready === true);
  const adapter = await page.evaluate(async () => {
    if (!('gpu' in navigator)) return 'no navigator.gpu';
    const a = await navigator.gpu.requestAdapter();
    return a ? 'ok' : 'requestAdapter() returned null';
  });
  expect(adapter, 'WebGPU must be available in this Chromium (launched with --enable-unsafe-webgpu)').toBe('ok');
}

test('every WebGPU kernel matches the CPU reference to 1e-4; a steady iteration allocates nothing', async ({ page }) => {
  const errors = watchErrors(page);
  await openCheckPage(page);
  const report = await page.evaluate(() => (globalThis as WithCheck).lowbitWebGpu!.parity());

  const a = report.adapter!;
  console.log(`adapter: ${a.vendor} ${a.architecture}${a.isFallbackAdapter ? ' (software)' : ''}; workgroup storage ${a.limits.maxComputeWorkgroupStorageSize} B, storage binding ${a.limits.maxStorageBufferBindingSize} B`);
  for (const c of report.cases) {
    const outs = Object.entries(c.errors).map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', ');
    console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.maxErr.toExponential(2)}  ${c.name}  [${outs}]${c.detail ? `  ${c.detail}` : ''}`);
  }
  console.log(`steady state: ${JSON.stringify(report.steady)}; ${report.cases.length} cases in ${(report.ms / 1000).toFixed(1)} s`);

  expect(report.cases.length).toBeGreaterThan(60);
  expect(report.cases.filter((c) => !c.ok).map((c) => `${c.name}: ${c.maxErr} ${c.detail ?? ''}`)).toEqual([]);
  expect(report.uncaptured).toEqual([]);
  // after one iteration of a reconstruction step, nothing new: no buffers, pipelines or (from the third) bind groups
  expect(report.steady.createdLater).toBe(0);
  expect(report.steady.pipelinesLater).toBe(0);
  expect(report.steady.bindGroupsLater).toBe(0);
  expect(report.steady.lossLast).toBeLessThan(report.steady.lossFirst);
  expect(errors).toEqual([]);
});

test('WebGPU from a worker, and the "no WebGPU" results callers fall back on', async ({ page }) => {
  const errors = watchErrors(page);
  await openCheckPage(page);
  const worker = await page.evaluate(() => (globalThis as WithCheck).lowbitWebGpu!.inWorker());
  expect(worker.ok, `${worker.reason}: ${worker.message}`).toBe(true);
  expect(worker.maxErr).toBeLessThanOrEqual(1e-4);

  const fallbacks = await page.evaluate(() => (globalThis as WithCheck).lowbitWebGpu!.fallbacks());
  expect(fallbacks.noGpu).toBe('no-navigator-gpu');
  expect(fallbacks.noAdapter).toBe('no-adapter');
  // this Chromium's only adapter is SwiftShader: refused unless a caller opts in, as the CPU backend is faster
  if (worker.adapter?.architecture === 'swiftshader') expect(fallbacks.byDefault).toMatch(/^software-adapter: /);
  expect(errors).toEqual([]);
});
