import { test, expect } from '@playwright/test';
import { watchErrors } from './watch-errors';
import { execFileSync } from 'node:child_process';


test('mixed precision: a cheap search under a size budget, a point of the front loaded into the plan and run beside uniform W2, kept over a reload', async ({ page }, testInfo) => {
  const { errors } = watchErrors(page);
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  await page.getByLabel('Method').selectOption('rtn');
  await page.getByLabel('Activation bits').selectOption('8');

  const panel = page.getByRole('region', { name: 'Mixed precision' });
  // a size budget halfway between the uniform W2 and W4 plans the panel shows for reference
  const reference = (bits: number) => panel.getByTestId('uniform-costs').locator(`button[data-bits="${bits}"]`);
  for (const b of [2, 3, 4, 8]) await expect(reference(b)).toContainText(`W${b}:`);
  const w2 = Number(await reference(2).getAttribute('data-cost'));
  const w4 = Number(await reference(4).getAttribute('data-cost'));
  expect(w2).toBeGreaterThan(0);
  expect(w4).toBeGreaterThan(w2);
  const budget = Number(((w2 + w4) / 2).toPrecision(4));
  await panel.getByLabel('Budget on').selectOption('size');
  await panel.getByLabel('Budget (MB)').fill(String(budget));
  for (const b of [2, 4, 8]) await expect(panel.getByRole('checkbox', { name: `W${b}`, exact: true })).toBeChecked();
  await expect(panel.getByRole('checkbox', { name: 'W3', exact: true })).not.toBeChecked();
  await panel.getByRole('radio', { name: /Cheap: round-to-nearest/ }).check();
  await panel.getByRole('button', { name: 'Search', exact: true }).click();
  // progress shows while the worker measures: the page stays responsive (the theme toggles meanwhile)
  await expect(panel.getByRole('status')).toBeVisible();
  await page.getByRole('button', { name: /Switch to (dark|light) theme/ }).click();
  await expect(panel.getByTestId('mp-summary')).toContainText('cheap (round-to-nearest)', { timeout: 180_000 });

  // the three charts draw on canvases (echarts may add layers), and each has its table
  for (const id of ['sensitivity-heatmap', 'pareto-chart', 'layer-bits-chart']) await expect(panel.getByTestId(id).locator('canvas').first()).toBeVisible();
  await expect(panel.getByTestId('sensitivity-heatmap')).toHaveAttribute('aria-label', /Heatmap of layer sensitivities, \d+ layers by 3 weight widths/);
  await panel.getByRole('button', { name: 'Show the sensitivities as a table' }).click();
  await panel.getByRole('button', { name: 'Show the configurations as a table' }).click();
  await panel.getByRole('button', { name: 'Show the plan’s bits per layer as a table' }).click();
  const layerRows = panel.getByTestId('layer-bits-table').locator('tbody tr');
  const layers = await layerRows.count();
  expect(layers).toBeGreaterThan(2);
  await expect(panel.getByTestId('sensitivity-table').locator('tbody tr')).toHaveCount(layers);
  const front = panel.getByTestId('pareto-table').locator('tbody tr');
  expect(await front.count()).toBeGreaterThan(3);
  const planBits = async () => (await panel.getByTestId('layer-bits-table').locator('td.bits').allTextContents()).join(' ');
  // the search is over for good: no late progress event brings its progress bar back
  await expect(panel.getByRole('button', { name: 'Cancel search' })).toHaveCount(0);
  await expect(panel.getByRole('button', { name: 'Search', exact: true })).toBeEnabled();
  const before = await planBits();
  expect(new Set(before.split(' '))).toEqual(new Set(['8']));

  // on the chart itself, by keyboard: Home selects the cheapest configuration, → the next, Enter loads it into the plan
  const chart = panel.getByTestId('pareto-chart');
  await chart.focus();
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowRight');
  await expect(panel.getByTestId('pareto-selection')).toContainText('Enter loads it');
  await page.keyboard.press('Enter');
  const second = await front.nth(1).getAttribute('data-bits');
  expect(second).not.toEqual(before);
  await expect.poll(planBits).toEqual(second);
  await expect(front.nth(1)).toHaveClass(/loaded/);

  // the configuration chosen at the budget, through the table: mixed widths, within the budget
  const chosen = front.filter({ hasText: 'chosen at the budget' });
  await expect(chosen).toHaveCount(1);
  const chosenBits = (await chosen.getAttribute('data-bits'))!;
  expect(new Set(chosenBits.split(' ')).size).toBeGreaterThan(1);
  expect(Number(await chosen.locator('td').first().textContent())).toBeLessThanOrEqual(budget);
  await chosen.getByRole('button', { name: /^Load the configuration/ }).click();
  await expect.poll(planBits).toEqual(chosenBits);
  await expect(panel.getByTestId('plan-bits-label')).toContainText('mixed, A8');

  // run it with the normal Run, then uniform W2 for comparison
  const runs = page.getByTestId('runs').getByRole('row');
  const runAndWait = async (count: number) => {
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await expect(runs).toHaveCount(count + 1, { timeout: 240_000 });
    await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/);
  };
  await runAndWait(1);
  const uniform2 = front.filter({ hasText: 'uniform W2' });
  await uniform2.getByRole('button', { name: /^Load the configuration/ }).click();
  await expect.poll(planBits).toEqual(await uniform2.getAttribute('data-bits'));
  // a uniform configuration is the plain plan at its width: the plan panel shows it so
  await expect(panel.getByTestId('plan-bits-label')).toContainText('W2A8');
  await expect(page.getByLabel('Weight bits')).toHaveValue('2');
  await runAndWait(2);
  await expect(page.getByTestId('runs')).toContainText('W2–8 mixed, A8');
  await expect(page.getByTestId('runs')).toContainText('W2A8');

  // the measured accuracies, side by side with the search's numbers
  const measured = panel.getByTestId('mp-measured');
  const accuracy = async (kind: string) => parseFloat((await measured.locator(`tr[data-uniform="${kind}"] td`).nth(4).textContent())!);
  await expect(measured.locator('tbody tr')).toHaveCount(2);
  await expect(measured.locator('tr[data-uniform="mixed"]')).toContainText(/mixed \(chosen\).*\d+\.\d\d%/);
  await expect(measured.locator('tr[data-uniform="2"]')).toContainText(/uniform W2.*\d+\.\d\d%/);
  // the proxy ranks the chosen configuration far above uniform W2; the measurement agrees
  expect(await accuracy('mixed')).toBeGreaterThan(await accuracy('2'));
  await panel.screenshot({ path: testInfo.outputPath('mixed-precision-panel.png') });

  // the search is kept with the project: a reload shows it again, with the same front
  const summary = await panel.getByTestId('mp-summary').textContent();
  const frontRows = await front.count();
  await page.reload();
  await expect(panel.getByTestId('mp-summary')).toHaveText(summary!, { timeout: 60_000 });
  await panel.getByRole('button', { name: 'Show the configurations as a table' }).click();
  await expect(front).toHaveCount(frontRows);
  await expect(panel.getByLabel('Budget (MB)')).toHaveValue(String(budget));
  expect(errors).toEqual([]);
});

/** A latency budget no plan of the demo can exceed (a minute per image): the first search only has to time the layers. */
const UNBOUNDED_MS = 60_000;

test('mixed precision: a full search can be cancelled; a latency budget times the layers on this device, and a second budget reuses both tables', async ({ page }) => {
  const { errors } = watchErrors(page);
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  const panel = page.getByRole('region', { name: 'Mixed precision' });

  // full mode reconstructs every table entry: long enough to cancel
  await panel.getByRole('radio', { name: /Full: after a short BRECQ reconstruction/ }).check();
  await panel.getByLabel('BRECQ iterations per entry').fill('5000');
  await panel.getByRole('button', { name: 'Search', exact: true }).click();
  await expect(panel.getByRole('status')).toContainText('Measuring layer sensitivities', { timeout: 60_000 });
  await panel.getByRole('button', { name: 'Cancel search' }).click();
  await expect(panel.getByText('Search cancelled.')).toBeVisible({ timeout: 30_000 });
  await expect(panel.getByTestId('mp-summary')).toHaveCount(0);

  await panel.getByRole('radio', { name: /Cheap: round-to-nearest/ }).check();
  await panel.getByLabel('Budget on').selectOption('latency');
  await expect(panel.getByTestId('uniform-costs')).toContainText('known once the layers have been timed');
  await expect(panel.getByRole('button', { name: 'Search', exact: true })).toBeDisabled();
  await panel.getByLabel('Budget (ms)').fill(String(UNBOUNDED_MS));
  await panel.getByRole('button', { name: 'Search', exact: true }).click();
  await expect(panel.getByRole('status')).toContainText('Timing layers for the latency table', { timeout: 120_000 });
  await expect(panel.getByTestId('mp-summary')).toContainText('latency: onnxruntime-web wasm', { timeout: 180_000 });
  await expect(panel.getByTestId('mp-summary')).not.toContainText('reused');

  // the table gives the uniform plans' latencies for the candidates it timed (W3 is not one)
  const reference = (bits: number) => panel.getByTestId('uniform-costs').locator(`button[data-bits="${bits}"]`);
  for (const b of [2, 4, 8]) await expect(reference(b)).toContainText(/ms$/);
  await expect(reference(3)).toHaveCount(0);
  await reference(2).click();
  const budget = Number(await panel.getByLabel('Budget (ms)').inputValue());
  expect(budget).toBe(Number(await reference(2).getAttribute('data-cost')));
  await panel.getByRole('button', { name: 'Search', exact: true }).click();
  await expect(panel.getByTestId('mp-summary')).toContainText(`latency ≤ ${budget.toPrecision(4)} ms`, { timeout: 60_000 });
  await expect(panel.getByTestId('mp-summary')).toContainText('reused from the previous search');
  await expect(panel.getByTestId('mp-summary')).toContainText('1 thread, reused');
  await panel.getByRole('button', { name: 'Show the configurations as a table' }).click();
  const chosen = panel.getByTestId('pareto-table').locator('tbody tr').filter({ hasText: 'chosen at the budget' });
  expect(Number(await chosen.locator('td').first().textContent())).toBeLessThanOrEqual(budget);

  // every control of the panel has an accessible name, and the chart that loads points takes the keyboard focus
  const unnamed = await panel.evaluate((root) =>
    Array.from(root.querySelectorAll<HTMLElement>('button, select, input, a[href], [tabindex]'))
      .filter((el) => !(el.getAttribute('aria-label') || (el as HTMLInputElement).labels?.[0]?.textContent?.trim() || (el.tagName === 'BUTTON' && el.textContent?.trim())))
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  expect(unnamed).toEqual([]);
  await panel.getByRole('button', { name: 'Hide the table of the configurations' }).focus();
  await page.keyboard.press('Shift+Tab');
  await expect(panel.getByTestId('pareto-chart')).toBeFocused();
  expect(errors).toEqual([]);
});

test('mixed precision: a latency table imported from the target device drives the search; one missing a layer is refused by name', async ({ page }) => {
  const { errors } = watchErrors(page);
  // the demo's layer names, as the CLI lists them: a made-up device where time is proportional to bits
  const layers = (JSON.parse(execFileSync(process.execPath, ['bin/lowbit.mjs', 'inspect', 'public/demo/model.onnx', '--json'], { encoding: 'utf8' })) as { layers: { name: string }[] }).layers.map((l) => l.name);
  const table = { device: 'target board', unit: 'ms', layers: Object.fromEntries(layers.map((n) => [n, { 2: 1, 4: 2, 8: 4 }])) };
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  const panel = page.getByRole('region', { name: 'Mixed precision' });
  await panel.getByLabel('Budget on').selectOption('latency');
  const file = panel.getByLabel('Import a latency table (JSON) measured on the target device');

  const broken = { ...table, layers: Object.fromEntries(layers.slice(1).map((n) => [n, { 2: 1, 4: 2, 8: 4 }])) };
  await file.setInputFiles({ name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(broken)) });
  await expect(panel.getByTestId('latency-source')).toContainText('Using broken.json');
  // 8-bit first and last layers (4 ms each) and 2 ms elsewhere: 2·4 + 8·2 = 24 ms
  await panel.getByLabel('Budget (ms)').fill('24');
  await panel.getByRole('button', { name: 'Search', exact: true }).click();
  await expect(panel.getByText(`no row for layer "${layers[0]}"`)).toBeVisible({ timeout: 120_000 });

  await file.setInputFiles({ name: 'board.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(table)) });
  await panel.getByRole('button', { name: 'Search', exact: true }).click();
  await expect(panel.getByTestId('mp-summary')).toContainText('latency: target board', { timeout: 120_000 });
  await expect(panel.getByTestId('mp-summary')).toContainText('latency ≤ 24.00 ms');
  // not timed in this tab: no "Timing layers" phase, and the chosen plan's cost is a sum of the table's entries
  await panel.getByRole('button', { name: 'Show the configurations as a table' }).click();
  const chosen = panel.getByTestId('pareto-table').locator('tbody tr').filter({ hasText: 'chosen at the budget' });
  const cost = Number(await chosen.locator('td').first().textContent());
  expect(cost).toBeLessThanOrEqual(24);
  expect(Number.isInteger(cost)).toBe(true);
  expect(errors).toEqual([]);
});
