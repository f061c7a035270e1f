import { test, expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import { decodeModel } from '../src/core/onnx/codec';
import { watchErrors as watch } from './watch-errors';
import { dropOnStudio } from './drop';

// the shared watch (console errors, uncaught exceptions, requests to another origin), as a list of errors
const watchErrors = (page: Page): string[] => watch(page).errors;

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

test('open the demo, run W8A8, see both accuracies, download the export; the CLI prints the same numbers', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('model-summary')).toContainText('model.onnx');
  await expect(page.getByTestId('calib-count')).toContainText('256 images');
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');

  await page.getByLabel('Weight bits').selectOption('8');
  await page.getByLabel('Activation bits').selectOption('8');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByRole('status')).toBeVisible();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 240_000 });
  mkdirSync('test-results/screenshots', { recursive: true });
  await page.screenshot({ path: 'test-results/screenshots/studio-results.png', fullPage: true });

  const fp = await page.getByTestId('fp-top1').textContent();
  const quant = await page.getByTestId('quant-top1').textContent();
  const exported = await page.getByTestId('exported-top1').textContent();
  expect(Math.abs(parseFloat(fp!) - parseFloat(exported!))).toBeLessThanOrEqual(1);

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-model').click()]);
  const bytes = new Uint8Array(readFileSync((await download.path())!));
  const model = decodeModel(bytes);
  expect(model.graph!.node!.filter((n) => n.opType === 'QuantizeLinear').length).toBeGreaterThan(0);
  expect(model.graph!.node!.filter((n) => n.opType === 'DequantizeLinear').length).toBeGreaterThan(0);

  // the plan saves and loads back
  const [planDownload] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-plan').click()]);
  const planPath = (await planDownload.path())!;
  expect(JSON.parse(readFileSync(planPath, 'utf8'))).toMatchObject({ method: 'rtn', wbits: 8, abits: 8 });
  await page.getByLabel('Weight bits').selectOption('4');
  await page.getByLabel('Load a saved plan').setInputFiles(planPath);
  await expect(page.getByLabel('Weight bits')).toHaveValue('8');
  await page.getByLabel('Load a saved plan').setInputFiles({ name: 'bad.json', mimeType: 'application/json', buffer: Buffer.from('{"method":"magic"}') });
  await expect(page.getByRole('alert')).toContainText('This file is not a plan');

  // the same job on the command line
  const out = execFileSync(
    process.execPath,
    ['bin/lowbit.mjs', 'quantize', 'public/demo/model.onnx', '--calib', 'public/demo/calib', '--val', 'public/demo/val', '--method', 'rtn', '--wbits', '8', '--abits', '8', '-o', 'test-results/cli-w8a8.onnx', '--json'],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const report = JSON.parse(out) as { fp: { top1: number }; quant: { top1: number }; exported: { top1: number } };
  expect([pct(report.fp.top1), pct(report.quant.top1), pct(report.exported.top1)]).toEqual([fp, quant, exported]);
  expect(errors).toEqual([]);
});

test('a file that is not a model gets a clear message and the page keeps working', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  await page.locator('input[type=file][accept=".onnx,.data"]').setInputFiles({ name: 'broken.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from('this is not protobuf at all') });
  await expect(page.getByRole('alert')).toContainText(/not a valid ONNX file/);
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('model-summary')).toContainText('model.onnx');
  expect(errors).toEqual([]);
});

test('AdaRound runs in the browser worker and gives the CLI’s numbers for the same plan and seed', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  await page.getByLabel('Method').selectOption('adaround');
  await page.getByLabel('Iterations per layer').fill('40');
  await page.getByLabel('Weight bits').selectOption('3');
  await page.getByLabel('Activation bits').selectOption('8');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  // the live loss curve of the layer being reconstructed
  await expect(page.getByRole('img', { name: /Loss curve of layer/ })).toBeVisible({ timeout: 60_000 });
  await page.screenshot({ path: 'test-results/screenshots/studio-adaround-running.png', fullPage: true });
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 240_000 });
  const quant = await page.getByTestId('quant-top1').textContent();
  const exported = await page.getByTestId('exported-top1').textContent();
  const out = execFileSync(
    process.execPath,
    ['bin/lowbit.mjs', 'quantize', 'public/demo/model.onnx', '--calib', 'public/demo/calib', '--val', 'public/demo/val', '--method', 'adaround', '--iters', '40', '--seed', '0', '--wbits', '3', '--abits', '8', '-o', 'test-results/cli-adaround.onnx', '--json'],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const report = JSON.parse(out) as { quant: { top1: number }; exported: { top1: number } };
  expect([pct(report.quant.top1), pct(report.exported.top1)]).toEqual([quant, exported]);
  expect(errors).toEqual([]);
});

test('a long run can be cancelled, and the studio runs again afterwards', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  await page.getByLabel('Method').selectOption('adaround');
  await page.getByLabel('Iterations per layer').fill('100000');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByRole('img', { name: /Loss curve of layer/ })).toBeVisible({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByText('Cancelled.')).toBeVisible({ timeout: 10_000 });
  await page.getByLabel('Method').selectOption('rtn');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 120_000 });
  expect(errors).toEqual([]);
});

test('a BRECQ run interrupted by a page reload resumes from its last finished block, and ends with the CLI’s numbers', async ({ page }) => {
  const errors = watchErrors(page);
  const setUp = async () => {
    await page.goto('/');
    await page.getByRole('button', { name: 'Open demo' }).click();
    await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
    await page.getByLabel('Method').selectOption('brecq');
    await page.getByLabel('Iterations per block').fill('40');
    await page.getByLabel('Weight bits').selectOption('3');
    await page.getByLabel('Activation bits').selectOption('none');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
  };
  await setUp();
  // two blocks finished (the stem, kept at 8 bits, and the first residual stage), then the tab goes away
  await expect(page.getByTestId('run-log')).toContainText('BRECQ layer1:', { timeout: 180_000 });
  await page.screenshot({ path: 'test-results/screenshots/studio-brecq-running.png', fullPage: true });
  await page.reload();
  await setUp();
  await expect(page.getByTestId('run-log')).toContainText(/resuming from the checkpoint: [2-4] of 5 blocks already done/, { timeout: 60_000 });
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 300_000 });
  await expect(page.getByTestId('block-metrics')).toContainText('layer3');
  const quant = await page.getByTestId('quant-top1').textContent();
  const out = execFileSync(
    process.execPath,
    ['bin/lowbit.mjs', 'quantize', 'public/demo/model.onnx', '--calib', 'public/demo/calib', '--val', 'public/demo/val', '--method', 'brecq', '--iters', '40', '--seed', '0', '--wbits', '3', '--abits', 'none', '-o', 'test-results/cli-brecq.onnx', '--json'],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const report = JSON.parse(out) as { quant: { top1: number } };
  expect(pct(report.quant.top1)).toEqual(quant);
  expect(errors).toEqual([]);
});

test('the partition of a block method can be edited: merge, split, undo', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  await page.getByLabel('Method').selectOption('brecq');
  const partition = page.getByTestId('partition');
  await expect(partition.getByRole('listitem')).toHaveCount(5);
  await page.getByRole('button', { name: 'Merge layer1 with layer2' }).click();
  await expect(partition.getByRole('listitem')).toHaveCount(4);
  await expect(partition).toContainText('layer1+layer2');
  // split the merged block where the first stage ends: back to five blocks
  const split = page.getByLabel('Split layer1+layer2 after a layer');
  const lastOfLayer1 = await split.locator('option').filter({ hasText: /layer1/ }).last().getAttribute('value');
  await split.selectOption(lastOfLayer1!);
  await expect(partition.getByRole('listitem')).toHaveCount(5);
  await page.getByRole('button', { name: /Undo all edits \(2\)/ }).click();
  await expect(partition.getByRole('listitem')).toHaveCount(5);
  await expect(partition).toContainText('layer2');
  expect(errors).toEqual([]);
});

test('drag and drop: a model and two image folders dropped on the page become a project, and a 4-bit model comes out', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  // a real drop event carrying real files: the demo's model, 64 calibration images in a flat
  // folder, and 200 validation images in class sub-folders (the browser's File names keep the paths)
  const dataTransfer = await page.evaluateHandle(async () => {
    const manifest = (await (await fetch('demo/manifest.json')).json()) as { model: string; calib: string[]; val: { path: string }[] };
    const dt = new DataTransfer();
    const add = async (url: string, name: string) => dt.items.add(new File([await (await fetch(url)).blob()], name));
    await add(`demo/${manifest.model}`, 'fashion-cnn.onnx');
    for (const p of manifest.calib.slice(0, 64)) await add(`demo/${p}`, `my-calib/${p.split('/').pop()}`);
    for (const v of manifest.val.filter((_, i) => i % 5 === 0)) await add(`demo/${v.path}`, `my-val/${v.path.split('/').slice(-2).join('/')}`);
    return dt;
  });
  await dropOnStudio(page, dataTransfer);
  await expect(page.getByTestId('model-summary')).toContainText('fashion-cnn.onnx', { timeout: 60_000 });
  await expect(page.getByTestId('calib-count')).toContainText('64 images');
  await expect(page.getByTestId('val-count')).toContainText('200 images in 10 classes');
  await page.getByLabel('Weight bits').selectOption('4');
  await page.getByLabel('Activation bits').selectOption('8');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 240_000 });
  const download = page.waitForEvent('download');
  await page.getByTestId('download-model').click();
  const file = await (await download).path();
  const model = decodeModel(new Uint8Array(readFileSync(file)));
  expect(model.graph!.node!.some((n) => n.opType === 'DequantizeLinear')).toBe(true);
  expect((await download).suggestedFilename()).toBe('fashion-cnn-w4a8-rtn.onnx');
  await page.screenshot({ path: 'test-results/screenshots/studio-dropped-project.png', fullPage: true });
  const top1 = await page.getByTestId('exported-top1').textContent();
  // a reload restores the dropped project from the origin-private file system, and the run history from IndexedDB
  await page.reload();
  await expect(page.getByTestId('model-summary')).toContainText('fashion-cnn.onnx', { timeout: 60_000 });
  await expect(page.getByTestId('calib-count')).toContainText('64 images');
  await expect(page.getByTestId('val-count')).toContainText('200 images in 10 classes');
  const runs = page.getByTestId('runs');
  await expect(runs.getByRole('row')).toHaveCount(2);
  await expect(runs).toContainText('W4A8');
  await expect(runs).toContainText(top1!);
  expect(errors).toEqual([]);
});

test('accessibility smoke test: every control has a name, and the main journey is reachable by keyboard', async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto('/');
  // keyboard only: Tab to "Open demo" and press Enter
  const reach = async (name: RegExp, limit = 40): Promise<void> => {
    for (let i = 0; i < limit; i++) {
      await page.keyboard.press('Tab');
      const label = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        if (!el) return '';
        const labelled = (el as HTMLInputElement).labels?.[0]?.textContent ?? '';
        return `${el.getAttribute('aria-label') ?? ''} ${labelled} ${el.tagName === 'BUTTON' || el.tagName === 'A' ? el.textContent : ''}`.trim();
      });
      if (name.test(label)) return;
    }
    throw new Error(`${name} was not reached by Tab`);
  };
  await reach(/Open demo/);
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  await reach(/Method/);
  // the weight granularity is a labelled select that arrow keys change: per channel, then groups of 32
  await reach(/Weight granularity/);
  await page.keyboard.press('ArrowDown');
  await expect(page.getByLabel('Weight granularity')).toHaveValue('32');
  await reach(/^Run$/);
  // every visible control has an accessible name
  const unnamed = await page.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLElement>('button, select, input, a[href], textarea'))
      .filter((el) => el.offsetParent !== null || el.closest('label'))
      .filter((el) => {
        const labels = (el as HTMLInputElement).labels;
        const name = el.getAttribute('aria-label') || (labels && labels.length ? labels[0]!.textContent : '') || el.getAttribute('title') || (el.tagName !== 'INPUT' && el.tagName !== 'SELECT' ? el.textContent : '');
        return !name || !name.trim();
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  expect(unnamed).toEqual([]);
  // landmarks: each panel is a labelled region
  for (const title of ['Model', 'Plan', 'Run']) await expect(page.getByRole('region', { name: title, exact: true })).toBeVisible();
  expect(errors).toEqual([]);
});
