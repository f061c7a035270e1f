import { test, expect, type Page } from '@playwright/test';
import { watchErrors } from './watch-errors';
import type { ParityReport } from '../src/core/backends/webgpu/testing/parity';
import type { DeviceLossCheck, ReconstructionCheck } from '../src/core/backends/webgpu/testing/check-page';

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
  reconstruction(): Promise<ReconstructionCheck>;
  deviceLoss(): Promise<DeviceLossCheck>;
}
/** What webgpu-check.html puts on globalThis (src/core/backends/webgpu/testing/check-page.ts). */
type WithCheck = typeof globalThis & { lowbitWebGpu?: CheckPage };

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
  const { errors } = watchErrors(page);
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
  const { errors } = watchErrors(page);
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

test('block reconstruction on WebGPU follows the CPU loop; a device lost mid-run hands the rest to the CPU', async ({ page }) => {
  const { errors } = watchErrors(page);
  await openCheckPage(page);
  const r = await page.evaluate(() => (globalThis as WithCheck).lowbitWebGpu!.reconstruction());
  const c = r.comparison;
  console.log(`reconstruction: ${c.points} losses, max relative difference ${c.maxRecErr.toExponential(2)} (regulariser ${c.maxRegErr.toExponential(2)}); codes equal ${(100 * c.sameCodes).toFixed(2)}%, moved from nearest ${(100 * c.moved!).toFixed(1)}%; CPU ${r.ms.cpu.toFixed(0)} ms, WebGPU ${r.ms.webgpu.toFixed(0)} ms (a software adapter here: not a GPU timing)`);
  console.log(r.infos.filter((m) => m.startsWith('block ')).join('\n'));
  expect(r.infos).toContain('block b1: on WebGPU');
  expect(r.infos).toContain('block b2: on WebGPU');
  expect(r.infos).toContainEqual(expect.stringMatching(/^block head: on the CPU: op Flatten /));
  expect(r.warnings).toEqual([]);
  expect(c.sameSchedule).toBe(true);
  expect(c.points).toBeGreaterThan(100);
  expect(c.maxRecErr).toBeLessThanOrEqual(1e-4);
  // the regulariser sums |2h(V) − 1|^β with β up to 20 through WGSL's pow, whose error grows with the exponent
  expect(c.maxRegErr).toBeLessThanOrEqual(1e-3);
  expect(c.betaMismatches).toBe(0);
  expect(c.sameCodes).toBeGreaterThanOrEqual(0.999);
  expect(c.moved!).toBeGreaterThan(0.01);

  const lost = await page.evaluate(() => (globalThis as WithCheck).lowbitWebGpu!.deviceLoss());
  console.log([...lost.infos.filter((m) => m.startsWith('block ')), ...lost.warnings].join('\n'));
  expect(lost.infos).toContain('block b1: on WebGPU');
  expect(lost.warnings).toContainEqual(expect.stringMatching(/^block b2: the WebGPU device was lost .*; this block and the rest run on the CPU$/));
  expect(lost.infos).toContainEqual(expect.stringMatching(/^block head: on the CPU: the WebGPU device was lost /));
  expect(lost.layers).toBeGreaterThan(3);
  expect(lost.sameCodes).toBeGreaterThanOrEqual(0.999);
  // a destroyed device reports its loss to the console; nothing else may
  expect(errors.filter((e) => !/destroyed|lost/i.test(e))).toEqual([]);
});
