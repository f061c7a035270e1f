import { test, expect } from '@playwright/test';
import { readdirSync, readFileSync } from 'node:fs';
import { writeZip } from '../src/core/testing/zip-writer';
import { watchErrors } from './watch-errors';
import { dropOnStudio } from './drop';

/**
 * Archives and JPEGs in the studio, through a real drop: a .zip of calibration images (flat inside,
 * so calibration) and a folder of JPEG validation images in class folders, then a W8A8 run to the end.
 */
test('a dropped zip of calibration images and a folder of JPEGs become a project that runs W8A8', async ({ page }) => {
  const { errors } = watchErrors(page);
  const calibDir = 'public/demo/calib';
  const calib = readdirSync(calibDir).filter((f) => f.endsWith('.png')).sort().slice(0, 64);
  const zip = await writeZip(calib.map((f, i) => ({ path: f, bytes: new Uint8Array(readFileSync(`${calibDir}/${f}`)), deflate: i % 2 === 0 })));
  // the committed JPEG fixtures (baseline, progressive, subsampled, restarts, grey), one per class of the 10-way model
  const fixtures = 'src/core/data/__fixtures__';
  const jpegs = readdirSync(fixtures).filter((f) => f.endsWith('.jpg') && f !== 'cmyk.jpg').sort().slice(0, 10);
  expect(jpegs).toHaveLength(10);
  const val = jpegs.map((f, i) => ({ path: `jpeg-val/${i}_class${i}/${f}`, bytes: Array.from(readFileSync(`${fixtures}/${f}`)) }));

  await page.goto('/');
  const dataTransfer = await page.evaluateHandle(
    async ({ zipBytes, val }) => {
      const dt = new DataTransfer();
      dt.items.add(new File([await (await fetch('demo/model.onnx')).blob()], 'fashion-cnn.onnx'));
      dt.items.add(new File([Uint8Array.from(zipBytes)], 'my-calib.zip', { type: 'application/zip' }));
      for (const v of val) dt.items.add(new File([Uint8Array.from(v.bytes)], v.path, { type: 'image/jpeg' }));
      return dt;
    },
    { zipBytes: Array.from(zip), val },
  );
  await dropOnStudio(page, dataTransfer);
  await expect(page.getByTestId('model-summary')).toContainText('fashion-cnn.onnx', { timeout: 60_000 });
  await expect(page.getByTestId('calib-count')).toContainText('64 images');
  await expect(page.getByTestId('val-count')).toContainText('10 images in 10 classes');
  await page.getByLabel('Weight bits').selectOption('8');
  await page.getByLabel('Activation bits').selectOption('8');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('exported-top1')).toHaveText(/\d+\.\d\d%/, { timeout: 240_000 });
  // the JPEGs (37×23 colour and 61×45) were decoded and converted for the 28×28 grey model, and the run says so
  await expect(page.getByTestId('run-log')).toContainText(/is in colour: images are converted to grey/);
  expect(errors).toEqual([]);
});

test('a flat archive named val.zip is validation without labels: the run reports fidelity to the float model', async ({ page }) => {
  const { errors } = watchErrors(page);
  const calibDir = 'public/demo/calib';
  const names = readdirSync(calibDir).filter((f) => f.endsWith('.png')).sort();
  const zipOf = (files: string[]) => writeZip(files.map((f) => ({ path: f, bytes: new Uint8Array(readFileSync(`${calibDir}/${f}`)), deflate: true })));
  const calib = await zipOf(names.slice(0, 32));
  const val = await zipOf(names.slice(32, 52));
  await page.goto('/');
  const dataTransfer = await page.evaluateHandle(
    async ({ calib, val }) => {
      const dt = new DataTransfer();
      dt.items.add(new File([await (await fetch('demo/model.onnx')).blob()], 'fashion-cnn.onnx'));
      dt.items.add(new File([Uint8Array.from(calib)], 'calib.zip', { type: 'application/zip' }));
      dt.items.add(new File([Uint8Array.from(val)], 'val.zip', { type: 'application/zip' }));
      return dt;
    },
    { calib: Array.from(calib), val: Array.from(val) },
  );
  await dropOnStudio(page, dataTransfer);
  await expect(page.getByTestId('calib-count')).toContainText('32 images', { timeout: 60_000 });
  await expect(page.getByTestId('val-count')).toContainText('20 images without labels');
  await page.getByLabel('Weight bits').selectOption('4');
  await page.getByLabel('Activation bits').selectOption('8');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await expect(page.getByTestId('fidelity')).toContainText('fidelity to the float model on 20 images', { timeout: 240_000 });
  expect(errors).toEqual([]);
});
