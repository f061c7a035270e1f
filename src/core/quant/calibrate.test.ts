import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { collectRanges } from './calibrate';
import { decodeModel } from '../onnx/codec';
import { canonicalize } from '../graph/canonicalize';
import { activationQuantPoints } from '../graph/layers';
import { ImageBatches } from '../data/batches';
import { readImageFolder } from '../../cli/files';
import { FASHION_MNIST } from '../data/preprocess';

describe('collectRanges', () => {
  it('gives the same ranges when a batch runs a few images at a time (large models) as when it runs whole', async () => {
    const model = canonicalize(decodeModel(new Uint8Array(await readFile('public/demo/model.onnx')))).model;
    const points = activationQuantPoints(model);
    // 40 images in batches of 32: a full batch and a short one
    const images = new ImageBatches((await readImageFolder('public/demo/calib')).slice(0, 40), FASHION_MNIST, 32);
    const whole = await collectRanges(model, points, images);
    // a budget of one byte per run: every image goes through ONNX Runtime on its own
    const sliced = await collectRanges(model, points, images, undefined, undefined, 1);
    expect([...sliced]).toEqual([...whole]);
    expect(points.length).toBeGreaterThan(5);
  });
});
