import { test, expect, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { decodeModel, encodeModel } from '../src/core/onnx/codec';
import { tinyResNet } from '../src/core/testing/tiny-resnet';
import { GraphWriter } from '../src/core/testing/graph-writer';
import { watchErrors } from './watch-errors';
import { dropOnStudio } from './drop';

async function openDemo(page: Page): Promise<void> {
  await page.goto('/');
  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
}

/** Closes the studio's worker from inside, as a crash would end it: nothing is told to the page. */
async function killStudioWorker(page: Page): Promise<void> {
  const worker = page.workers().find((w) => w.url().includes('studio.worker'));
  expect(worker, 'the studio worker is running').toBeTruthy();
  // close on the next turn, so that the evaluation itself still answers
  await worker!.evaluate(() => void setTimeout(() => self.close(), 0));
}

test('a whole journey (open the demo, run, download) asks nothing of any other origin', async ({ page }) => {
  const { errors, requests } = watchErrors(page);
  await openDemo(page);
  await page.getByLabel('Weight bits').selectOption('8');
  await page.getByLabel('Activation bits').selectOption('8');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 240_000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download-model').click()]);
  expect(decodeModel(new Uint8Array(readFileSync((await download.path())!))).graph!.node!.some((n) => n.opType === 'DequantizeLinear')).toBe(true);
  // the watch saw the traffic: the page, the worker's fetches of the demo model and its 1,256 images
  expect(requests.filter((u) => u.endsWith('/demo/model.onnx'))).toHaveLength(1);
  expect(requests.filter((u) => /\/demo\/(calib|val)\//.test(u)).length).toBe(1256);
  expect(errors).toEqual([]);
});

test('the watch itself: a request to another origin, from the page or a worker, is caught', async ({ page }) => {
  const { errors } = watchErrors(page);
  await page.goto('/');
  // another port is another origin; nothing listens there, so the requests fail fast
  await page.evaluate(() => fetch('http://127.0.0.1:9/from-page').catch(() => undefined));
  await page.evaluate(() => new Promise((done) => {
    const w = new Worker(URL.createObjectURL(new Blob(["fetch('http://127.0.0.1:9/from-worker').catch(() => {}).finally(() => postMessage(0))"], { type: 'text/javascript' })));
    w.onmessage = done;
  }));
  expect(errors.filter((e) => e.startsWith('request to another origin'))).toEqual(['request to another origin: http://127.0.0.1:9/from-page', 'request to another origin: http://127.0.0.1:9/from-worker']);
});

test('a corrupt model dropped onto an open project is refused with the reason, and the project stays', async ({ page }) => {
  const { errors } = watchErrors(page);
  await openDemo(page);
  const demo = readFileSync('public/demo/model.onnx');
  await page.locator('input[type=file][accept=".onnx,.data"]').setInputFiles({ name: 'half.onnx', mimeType: 'application/octet-stream', buffer: demo.subarray(0, demo.length >> 1) });
  await expect(page.getByTestId('dropzone').getByRole('alert')).toHaveText('not a valid ONNX file (corrupt or truncated protobuf: ModelProto.graph: truncated sub-message)');
  await expect(page.getByTestId('model-summary')).toContainText('model.onnx');
  await expect(page.getByTestId('calib-count')).toContainText('256 images');
  await expect(page.getByRole('button', { name: 'Run', exact: true })).toBeEnabled();
  expect(errors).toEqual([]);
});

test('a model whose input size is dynamic: the studio says what it assumed, and where to change it', async ({ page }) => {
  const { errors } = watchErrors(page);
  await page.goto('/');
  const model = tinyResNet(1);
  model.graph!.input![0]!.type!.tensorType!.shape!.dim = [{ dimParam: 'batch' }, { dimValue: 1 }, { dimParam: 'height' }, { dimParam: 'width' }];
  await page.locator('input[type=file][accept=".onnx,.data"]').setInputFiles({ name: 'dynamic.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from(encodeModel(model)) });
  await expect(page.getByTestId('model-summary')).toContainText('dynamic.onnx');
  await expect(page.getByRole('alert').filter({ hasText: 'dynamic shape' })).toHaveText('the model\'s input "input" has a dynamic shape [batch, 1, height, width]: the studio assumed 28×28 pixels; set the right values under Preprocessing');
  expect(errors).toEqual([]);
});

test('what would stop a run is said when the files are dropped: a non-image model, too few class folders', async ({ page }) => {
  const { errors } = watchErrors(page);
  await page.goto('/');
  const mlp = new GraphWriter(1);
  mlp.op('Relu', 'relu', ['input']);
  const model = mlp.model('mlp', ['batch', 16], 16);
  model.graph!.output![0]!.name = 'relu_out';
  await page.locator('input[type=file][accept=".onnx,.data"]').setInputFiles({ name: 'mlp.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from(encodeModel(model)) });
  await expect(page.getByRole('alert').filter({ hasText: 'image model' })).toHaveText('the model\'s input "input" has shape [batch, 16]; an image model takes N×C×H×W');

  await page.getByRole('button', { name: 'Open demo' }).click();
  await expect(page.getByTestId('val-count')).toContainText('in 10 classes');
  await expect(page.getByRole('region', { name: 'Model', exact: true }).getByRole('alert')).toHaveCount(0);
  // validation images of three classes only, for the ten-class demo model
  const dataTransfer = await page.evaluateHandle(async () => {
    const manifest = (await (await fetch('demo/manifest.json')).json()) as { val: { path: string; label: number }[] };
    const dt = new DataTransfer();
    for (const v of manifest.val.filter((x, i) => x.label < 3 && i % 10 === 0)) dt.items.add(new File([await (await fetch(`demo/${v.path}`)).blob()], `val3/${v.path.split('/').slice(-2).join('/')}`));
    return dt;
  });
  await dropOnStudio(page, dataTransfer);
  await expect(page.getByTestId('val-count')).toContainText('in 3 classes');
  await expect(page.getByRole('region', { name: 'Model', exact: true }).getByRole('alert')).toContainText('the validation set has 3 classes (0_T-shirt, 1_Trouser, 2_Pullover) but the model outputs 10');
  // and the run says the same
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByRole('region', { name: 'Run', exact: true }).getByRole('alert')).toContainText('but the model outputs 10', { timeout: 60_000 });
  expect(errors).toEqual([]);
});

test('text from a plan or a model file is shown as text, never run as markup', async ({ page }) => {
  const { errors } = watchErrors(page);
  await openDemo(page);
  const payload = '<img src=x onerror="window.__pwned=1">';
  await page.getByLabel('Load a saved plan').setInputFiles({ name: 'evil.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ method: payload, wbits: 4, abits: 8 })) });
  const alert = page.getByRole('alert').filter({ hasText: 'This file is not a plan' });
  await expect(alert).toContainText(`unknown method ${JSON.stringify(payload)}`);
  await expect(alert.locator('img')).toHaveCount(0);
  // a model whose file name is markup
  const name = '<img src=x onerror=window.__pwned=2>.onnx';
  await page.locator('input[type=file][accept=".onnx,.data"]').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: readFileSync('public/demo/model.onnx') });
  await expect(page.getByTestId('model-summary')).toContainText(name);
  await expect(page.getByTestId('model-summary').locator('img')).toHaveCount(0);
  expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(errors).toEqual([]);
});

test('a worker that dies during a BRECQ run: the run is marked interrupted and resumes from its last finished block', async ({ page }) => {
  const { errors } = watchErrors(page);
  await openDemo(page);
  await page.getByLabel('Method').selectOption('brecq');
  await page.getByLabel('Iterations per block').fill('20');
  await page.getByLabel('Weight bits').selectOption('3');
  await page.getByLabel('Activation bits').selectOption('none');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  // the stem and the first residual stage are done (and saved), then the worker goes away
  await expect(page.getByTestId('run-log')).toContainText('BRECQ layer1:', { timeout: 180_000 });
  await killStudioWorker(page);
  const interrupted = page.getByTestId('run-interrupted');
  await expect(interrupted).toContainText('the studio’s worker stopped: it crashed, ran out of memory or was closed');
  await expect(interrupted).toContainText('Every block it finished is saved in this browser.');
  await expect(page.getByRole('status').filter({ hasText: 'Quantizing weights' })).toHaveCount(0);
  // a fresh worker has reopened the project
  await expect(page.getByTestId('model-summary')).toContainText('model.onnx');
  await interrupted.getByRole('button', { name: 'Resume from the last finished block' }).click();
  await expect(page.getByTestId('run-log')).toContainText(/resuming from the checkpoint: [2-4] of 5 blocks already done/, { timeout: 60_000 });
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 300_000 });

  // a worker lost while idle is reported, replaced, and the project can still be run
  await killStudioWorker(page);
  await expect(page.getByTestId('dropzone').getByRole('alert')).toContainText('the studio’s worker stopped: it crashed, ran out of memory or was closed; it has been restarted');
  await expect(page.getByRole('button', { name: 'Run', exact: true })).toBeEnabled();
  await page.getByLabel('Method').selectOption('rtn');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Evaluating the float model' })).toBeVisible();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 240_000 });
  expect(errors).toEqual([]);
});

test('an uncaught error in the worker is reported, and a fresh worker takes over the project', async ({ page }) => {
  const { errors } = watchErrors(page);
  await openDemo(page);
  const worker = page.workers().find((w) => w.url().includes('studio.worker'));
  await worker!.evaluate(() => void setTimeout(() => {
    throw new Error('boom from a test');
  }, 0));
  await expect(page.getByTestId('dropzone').getByRole('alert')).toContainText('the studio’s worker failed: Uncaught Error: boom from a test; it has been restarted');
  await expect(page.getByTestId('calib-count')).toContainText('256 images');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 240_000 });
  // the worker's own report of its error is the only console error
  expect(errors.filter((e) => !/boom from a test/.test(e))).toEqual([]);
});
