import { test, expect, type Page } from '@playwright/test';
import { watchErrors } from './watch-errors';
import { dropOnStudio } from './drop';
import { readFileSync } from 'node:fs';
import { GraphWriter } from '../src/core/testing/graph-writer';
import { encodeModel } from '../src/core/onnx/codec';
import { floatTensor } from '../src/core/onnx/tensor-data';

async function openDemo(page: Page): Promise<void> {
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
}

test('a BRECQ run paused holds where it is, resumed it completes; the printable report holds its figures and blocks; screenshots of each screen', async ({ page }, testInfo) => {
  test.setTimeout(480_000);
  const { errors } = watchErrors(page);
  await page.setViewportSize({ width: 1280, height: 1000 });
  await openDemo(page);
  await page.screenshot({ path: testInfo.outputPath('1-load.png'), fullPage: true });

  await page.getByLabel('Method').selectOption('brecq');
  await page.getByLabel('Iterations per block').fill('150');
  await page.getByLabel('Weight bits').selectOption('4');
  await page.getByLabel('Activation bits').selectOption('none');
  await expect(page.getByTestId('partition').getByRole('listitem')).toHaveCount(5);
  await page.screenshot({ path: testInfo.outputPath('2-plan.png'), fullPage: true });
  // the plan card at the two window sizes the studio is judged at: every choice readable, none cut
  await expect(page.getByLabel('Weight grid')).toHaveValue('asymmetric');
  for (const [width, height] of [[1440, 900], [1024, 700]] as const) {
    await page.setViewportSize({ width, height });
    await page.getByRole('region', { name: 'Plan' }).screenshot({ path: testInfo.outputPath(`2-plan-${width}x${height}.png`) });
  }
  await page.setViewportSize({ width: 1280, height: 1000 });

  await page.getByRole('button', { name: 'Run', exact: true }).click();
  const position = page.getByTestId('loss-position');
  await expect(position).toHaveText(/iteration \d+/, { timeout: 180_000 });
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(page.getByTestId('paused')).toHaveText(/paused/, { timeout: 30_000 });
  await expect(page.getByRole('button', { name: 'Resume' })).toBeVisible();
  // held: the loss curve does not move while paused (it reports every 1% of a block's iterations)
  const held = await position.textContent();
  await page.waitForTimeout(2000);
  await expect(position).toHaveText(held!);
  await expect(page.getByTestId('eta')).toContainText('holds its state in memory');
  await page.screenshot({ path: testInfo.outputPath('3-run-paused.png'), fullPage: true });

  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(page.getByTestId('paused')).toBeHidden();
  await expect(position).not.toHaveText(held!, { timeout: 30_000 });
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 400_000 });
  await page.screenshot({ path: testInfo.outputPath('4-results.png'), fullPage: true });

  const figures = await Promise.all(['fp-top1', 'quant-top1', 'exported-top1'].map((id) => page.getByTestId(id).textContent()));
  const blocks = await page.getByTestId('block-metrics').locator('tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? '')));
  expect(blocks.length).toBeGreaterThanOrEqual(4);

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-report-html').click()]);
  expect(download.suggestedFilename()).toBe('model-w4a32-brecq.report.html');
  const html = readFileSync((await download.path())!, 'utf8');
  for (const f of figures) expect(html).toContain(`<b>${f}</b>`);
  // every block row of the page is a row of the report, with the same SQNR and cosine
  for (const [block, layers, sqnr, cosine] of blocks) expect(html).toContain(`<tr><td>${block}</td><td>${layers}</td><td>${sqnr}</td><td>${cosine}</td>`);
  expect(html).toContain('<svg');
  expect(html).toContain('@media print');
  // self-contained: no address to fetch, no script
  expect(html).not.toMatch(/https?:\/\//i);
  expect(html).not.toMatch(/<script|<link|src=/i);
  // and it renders, offline, with its layer rows and the chart drawn
  const report = await page.context().newPage();
  await report.route('**/*', (route) => route.abort());
  await report.setContent(html);
  await expect(report.getByTestId('report-blocks').locator('tbody tr')).toHaveCount(blocks.length);
  await expect(report.locator('svg rect, svg path').first()).toBeAttached();
  await report.close();
  expect(errors).toEqual([]);
});

test('preprocessing: the proposed preset, editable fields, a preview strip that follows them, kept over a reload', async ({ page }) => {
  const { errors } = watchErrors(page);
  await openDemo(page);
  const preset = page.getByLabel('Preset');
  await expect(preset).toHaveValue('fmnist');
  await expect(preset.locator('option[value="fmnist"]')).toContainText('proposed for this model');
  const strip = page.getByTestId('preprocess-preview');
  const tiles = strip.getByRole('img');
  await expect(tiles).toHaveCount(6);
  // labelled with the demo's class names (from its validation folders) and a probability
  await expect(tiles.first()).toHaveAccessibleName(/as the model sees it: .+ \(\d+%\)/);
  const names = ['T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle-boot'];
  const captions = await strip.locator('figcaption').allTextContents();
  for (const c of captions) expect(names.some((n) => c.includes(n)), c).toBe(true);

  // a wider std changes what the model gets: the preset becomes custom and the predictions move
  await page.getByLabel('Std (per channel)').fill('0.9');
  await expect(preset).toHaveValue('custom');
  await expect.poll(() => strip.locator('figcaption').allTextContents()).not.toEqual(captions);

  // a size the model does not take is said plainly, and the preview shows that size
  await page.getByLabel('Width').fill('32');
  await expect(page.getByRole('alert').filter({ hasText: 'but preprocessing produces [N, 1, 28, 32]' })).toBeVisible();
  await expect(strip.locator('canvas').first()).toHaveAttribute('width', '32');
  // a value that is not a list of numbers is refused without applying it
  await page.getByLabel('Mean (per channel, pixels in [0, 1])').fill('0.2, 0.3');
  await expect(page.getByRole('alert').filter({ hasText: 'mean has 2 values for 1 channels' })).toBeVisible();
  await page.getByLabel('Width').fill('28');
  await page.getByLabel('Mean (per channel, pixels in [0, 1])').fill('0.3');
  await expect(page.getByRole('alert').filter({ hasText: /expects input|mean has/ })).toHaveCount(0);
  await expect(strip.locator('canvas').first()).toHaveAttribute('width', '28');

  // the edit is the project's: it comes back after a reload
  await page.reload();
  await expect(page.getByLabel('Std (per channel)')).toHaveValue('0.9', { timeout: 60_000 });
  await expect(page.getByLabel('Mean (per channel, pixels in [0, 1])')).toHaveValue('0.3');
  await page.getByLabel('Preset').selectOption('fmnist');
  await expect(page.getByLabel('Std (per channel)')).toHaveValue('0.353');
  await expect(tiles).toHaveCount(6);
  expect(errors).toEqual([]);
});

test('a 1000-class RGB model gets the ImageNet preset, and its predictions carry ImageNet class names', async ({ page }) => {
  const { errors } = watchErrors(page);
  // a small 1000-way model whose bias makes class 207 win whatever the image
  const g = new GraphWriter(3);
  g.head('input', 3, 1000);
  const bias = new Float32Array(1000);
  bias[207] = 20;
  g.inits.splice(g.inits.findIndex((t) => t.name === 'fc.bias'), 1, floatTensor('fc.bias', [1000], bias));
  const model = Buffer.from(encodeModel(g.model('imagenet-head', [1, 3, 224, 224], 1000))).toString('base64');
  await page.goto('/');
  const dataTransfer = await page.evaluateHandle(async (b64) => {
    const manifest = (await (await fetch('demo/manifest.json')).json()) as { calib: string[] };
    const dt = new DataTransfer();
    dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'imagenet-head.onnx'));
    for (const p of manifest.calib.slice(0, 8)) dt.items.add(new File([await (await fetch(`demo/${p}`)).blob()], `calib/${p.split('/').pop()}`));
    return dt;
  }, model);
  await dropOnStudio(page, dataTransfer);
  await expect(page.getByTestId('model-summary')).toContainText('imagenet-head.onnx', { timeout: 60_000 });
  await expect(page.getByLabel('Preset')).toHaveValue('imagenet');
  await expect(page.getByLabel('Shorter side, then crop')).toHaveValue('256');
  const tiles = page.getByTestId('preprocess-preview').getByRole('img');
  await expect(tiles).toHaveCount(6);
  await expect(tiles.first()).toHaveAccessibleName(/golden retriever \(100%\)/);
  // grey 28×28 images become 224×224 RGB: what the model gets, at its size
  await expect(page.getByTestId('preprocess-preview').locator('canvas').first()).toHaveAttribute('width', '224');
  expect(errors).toEqual([]);
});

test('the model view: blocks collapse and expand, each layer with its op, shapes, parameters and MACs', async ({ page }) => {
  const { errors } = watchErrors(page);
  await openDemo(page);
  const view = page.getByTestId('model-view');
  const groups = view.locator('details');
  await expect(groups).toHaveCount(5);
  await expect(groups.first()).toHaveAttribute('open', '');
  await expect(groups.nth(2)).not.toHaveAttribute('open', '');
  await expect(groups.nth(2).locator('tbody tr').first()).toBeHidden();
  await groups.nth(2).locator('summary').click();
  await expect(groups.nth(2)).toHaveAttribute('open', '');
  await expect(groups.nth(2).locator('tbody tr').first()).toBeVisible();
  await expect(groups.nth(2).locator('tbody tr').first()).toContainText('Conv 3×3');
  // the layers' MACs add up to the model's, as the Model card states it
  const rows = await view.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
  const macs = rows.reduce((a, r) => a + Number(r[5]!.replace(/,/g, '')), 0);
  const stated = await page.getByTestId('model-summary').locator('dt:has-text("MACs / image") + dd').textContent();
  expect(macs).toBe(Number(stated!.replace(/,/g, '')));
  // every row has an output shape measured at batch 1 (1×C×H×W or 1×N)
  for (const r of rows) expect(r[3]).toMatch(/^1×\d+(×\d+×\d+)?$/);
  await groups.first().locator('summary').click();
  await expect(groups.first()).not.toHaveAttribute('open', '');
  expect(errors).toEqual([]);
});

test('themes: the system preference first, then the toggle, kept over a reload', async ({ page }) => {
  const { errors } = watchErrors(page);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto('/');
  const html = page.locator('html');
  await expect(html).toHaveAttribute('data-theme', 'dark');
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const dark = await background();
  await page.getByRole('button', { name: 'Switch to light theme' }).click();
  await expect(html).toHaveAttribute('data-theme', 'light');
  expect(await background()).not.toBe(dark);
  // the choice beats the system preference on the next visit
  await page.reload();
  await expect(html).toHaveAttribute('data-theme', 'light');
  await page.getByRole('button', { name: 'Switch to dark theme' }).click();
  await expect(html).toHaveAttribute('data-theme', 'dark');
  expect(await background()).toBe(dark);
  expect(errors).toEqual([]);
});
