import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { watchErrors } from './watch-errors';

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

/*
 * The Compute settings: where BRECQ's block loops run (WebGPU or the WASM kernels) and how many
 * CPU threads, a browser preference outside the plan. This Chromium's WebGPU is SwiftShader, a
 * software adapter: 'Automatic' declines it, 'WebGPU' takes it.
 */
test('the backend and thread choices take effect, survive a reload, and one WASM thread gives the CLI’s numbers', async ({ page }) => {
  // SwiftShader emulates the GPU on the CPU, about ten times slower than the WASM kernels
  test.setTimeout(900_000);
  const { errors } = watchErrors(page);
  const plan = async (iters: number) => {
    await page.getByRole('button', { name: 'Open demo' }).click();
    await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
    await page.getByLabel('Method').selectOption('brecq');
    await page.getByLabel('Iterations per block').fill(String(iters));
    await page.getByLabel('Weight bits').selectOption('3');
    await page.getByLabel('Activation bits').selectOption('none');
  };
  await page.goto('/');
  await plan(5);

  // WebGPU on request: the log says the blocks ran there (the head, with its Flatten, on the CPU)
  await page.getByLabel('Block reconstruction on').selectOption('webgpu');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 400_000 });
  const log = page.getByTestId('run-log');
  await expect(log).toContainText('block layer1: on WebGPU');
  await expect(log).toContainText(/block head: on the CPU: op Flatten .* not on WebGPU/);

  // the preference is this browser's: a reload keeps it
  await page.reload();
  await expect(page.getByLabel('Block reconstruction on')).toHaveValue('webgpu');
  await page.getByLabel('Block reconstruction on').selectOption('wasm');
  await page.getByLabel('CPU threads').selectOption('1');
  await page.reload();
  await expect(page.getByLabel('Block reconstruction on')).toHaveValue('wasm');
  await expect(page.getByLabel('CPU threads')).toHaveValue('1');

  // WASM on one thread: the CLI (on its default threads) computes the same model
  await plan(20);
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 400_000 });
  await expect(page.getByTestId('run-log')).toContainText('BRECQ layer1:');
  await expect(page.getByTestId('run-log')).not.toContainText('on WebGPU');
  const quant = await page.getByTestId('quant-top1').textContent();
  const exported = await page.getByTestId('exported-top1').textContent();
  const out = execFileSync(
    process.execPath,
    ['bin/lowbit.mjs', 'quantize', 'public/demo/model.onnx', '--calib', 'public/demo/calib', '--val', 'public/demo/val', '--method', 'brecq', '--iters', '20', '--seed', '0', '--wbits', '3', '--abits', 'none', '-o', 'test-results/cli-compute.onnx', '--json'],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const report = JSON.parse(out) as { quant: { top1: number }; exported: { top1: number } };
  expect([pct(report.quant.top1), pct(report.exported.top1)]).toEqual([quant, exported]);
  expect(errors).toEqual([]);
});
