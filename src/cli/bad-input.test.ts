import { describe, expect, it } from 'vitest';
import { lowbit } from './run-cli';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel } from '../core/onnx/codec';
import { DataType, type ModelProto } from '../core/onnx/schema';
import { floatTensor } from '../core/onnx/tensor-data';
import { intAttr } from '../core/graph/attributes';
import { tinyResNet } from '../core/testing/tiny-resnet';
import { encode } from '../core/testing/png-writer';

/**
 * Bad input on the command line: every case exits with code 2 and one line naming the problem,
 * or (where the input is usable after a conversion) runs and says what it converted.
 * The files are made here: models by the graph writer, images by the test PNG encoder, JPEG and
 * GIF from the committed fixtures (src/core/data/__fixtures__/make-foreign-fixtures.py).
 */
const DEMO = 'public/demo';
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-bad-'));
const FIXTURES = 'src/core/data/__fixtures__';

/** Exit code 2, and one line of reason matching `reason`: the last on stderr, after any progress lines of a run that had started. */
async function refused(reason: RegExp, ...args: string[]): Promise<void> {
  const r = await lowbit(...args);
  const lines = r.stderr.trim().split('\n');
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  expect(lines.filter((l) => l.startsWith('lowbit:'))).toEqual([lines.at(-1)]);
  expect(lines.at(-1)).toMatch(reason);
  expect(r.code).toBe(2);
}

function writeModel(name: string, model: ModelProto): string {
  const path = join(tmp, name);
  writeFileSync(path, encodeModel(model));
  return path;
}

/** A folder of `n` PNGs made by `make`. */
async function pngFolder(name: string, n: number, make: (i: number) => Promise<Uint8Array>): Promise<string> {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `${String(i).padStart(3, '0')}.png`), await make(i));
  return dir;
}

const greyPng = (size: number, seed: number) => encode({ width: size, height: size, colorType: 0, depth: 8, samples: Array.from({ length: size * size }, (_, j) => (j * 31 + seed * 17) % 256) });

describe('a corrupt model', () => {
  it('a truncated ONNX file', async () => {
    const bytes = readFileSync(`${DEMO}/model.onnx`);
    const cut = join(tmp, 'cut.onnx');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await refused(/^lowbit: not a valid ONNX file \(corrupt or truncated protobuf: ModelProto.graph: truncated sub-message\)$/, 'inspect', cut);
    await refused(/not a valid ONNX file/, 'quantize', cut, '--calib', `${DEMO}/calib`, '-o', join(tmp, 'x.onnx'));
  });

  it('--checkpoint with NWQ, which optimises the whole network at once and has no block to save', async () => {
    await refused(/--checkpoint works with the methods that save after every block \(brecq, qdrop\), not nwq/, 'quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--method', 'nwq', '--checkpoint', join(tmp, 'ckpt'), '-o', join(tmp, 'nwq.onnx'));
  });
  it('a weight grid the tool does not have', async () => {
    await refused(/weightGrid must be "asymmetric" or "symmetric", got "uniform"/, 'quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--weight-grid', 'uniform', '-o', join(tmp, 'grid.onnx'));
  });
  it('an empty file', async () => {
    const empty = join(tmp, 'empty.onnx');
    writeFileSync(empty, '');
    await refused(/^lowbit: the file is empty$/, 'inspect', empty);
  });
});

describe('model inputs', () => {
  it('a dynamic image size is asked for with --size, and the run goes ahead once it is given', async () => {
    const model = tinyResNet(1);
    model.graph!.input![0]!.type!.tensorType!.shape!.dim = [{ dimParam: 'batch' }, { dimValue: 1 }, { dimParam: 'h' }, { dimParam: 'w' }];
    const path = writeModel('dynamic.onnx', model);
    const calib = await pngFolder('calib8', 8, (i) => greyPng(8, i));
    await refused(/the model's input "input" has a dynamic shape \[batch, 1, h, w\]: give --size H,W \(with --mean and --std\), or --preprocess fmnist\|imagenet/, 'quantize', path, '--calib', calib, '-o', join(tmp, 'x.onnx'));
    const ok = await lowbit('quantize', path, '--calib', calib, '--size', '8,8', '--mean', '0.5', '--std', '0.5', '-o', join(tmp, 'dynamic-q.onnx'));
    expect(ok.stderr).not.toMatch(/internal error/);
    expect(ok.code).toBe(0);
  });

  it('an input with no shape in the file needs both the size and the channels, and then runs', async () => {
    const model = tinyResNet(1);
    delete model.graph!.input![0]!.type!.tensorType!.shape;
    const path = writeModel('noshape.onnx', model);
    const calib = await pngFolder('calib8b', 4, (i) => greyPng(8, i));
    await refused(/the model's input "input" has no shape in the file: give --size H,W and --channels 1\|3/, 'quantize', path, '--calib', calib, '-o', join(tmp, 'x.onnx'));
    await refused(/give --channels 1\|3 \(/, 'quantize', path, '--calib', calib, '--size', '8,8', '-o', join(tmp, 'x.onnx'));
    const ok = await lowbit('quantize', path, '--calib', calib, '--size', '8,8', '--channels', '1', '--mean', '0.5', '--std', '0.5', '-o', join(tmp, 'noshape-q.onnx'));
    expect(ok.stderr).not.toMatch(/internal error/);
    expect(ok.code).toBe(0);
  });

  it('a 2-D input (not an image model)', async () => {
    const model: ModelProto = {
      irVersion: 8,
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'mlp',
        node: [{ name: 'fc', opType: 'Gemm', input: ['x', 'fc.weight', 'fc.bias'], output: ['logits'], attribute: [intAttr('transB', 1)] }],
        initializer: [floatTensor('fc.weight', [5, 16], new Float32Array(80).fill(0.1)), floatTensor('fc.bias', [5], new Float32Array(5))],
        input: [{ name: 'x', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 16 }] } } } }],
        output: [{ name: 'logits', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 5 }] } } } }],
      },
    };
    const path = writeModel('mlp.onnx', model);
    await refused(/the model's input "x" has shape \[batch, 16\]; an image model takes N×C×H×W/, 'quantize', path, '--calib', `${DEMO}/calib`, '--calib-size', '4', '-o', join(tmp, 'x.onnx'));
  });
});

describe('images', () => {
  it('colour images of another size are resized and converted to grey, and the run says so', async () => {
    const calib = await pngFolder('rgb32', 8, (i) => encode({ width: 32, height: 32, colorType: 2, depth: 8, samples: Array.from({ length: 32 * 32 * 3 }, (_, j) => (j * 7 + i) % 256) }));
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', calib, '--wbits', '8', '-o', join(tmp, 'rgb32.onnx'));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/calibration images: 000\.png is 32×32: images are resized \(bilinear\) to the model's 28×28/);
    expect(r.stderr).toMatch(/calibration images: 000\.png is in colour: images are converted to grey \(ITU-R 601 luma\)/);
  });

  it('an animated PNG: its first frame, with a warning', async () => {
    const calib = join(tmp, 'apng');
    mkdirSync(calib);
    copyFileSync(join(FIXTURES, 'animated.png'), join(calib, 'anim.png'));
    const r = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', calib, '--wbits', '8', '-o', join(tmp, 'apng.onnx'));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/calibration images: anim\.png is an animated PNG: only its first frame is used/);
  });

  it('a CMYK JPEG and an animated GIF are refused by name', async () => {
    for (const [file, reason] of [['cmyk.jpg', /cmyk\.jpg: Unsupported JPEG: CMYK and YCCK JPEG \(4 components\) are not supported; convert the image to RGB/], ['animated.gif', /animated\.gif: GIF images are not supported; convert them to PNG/]] as const) {
      const dir = join(tmp, `foreign-${file}`);
      mkdirSync(dir);
      copyFileSync(join(FIXTURES, file), join(dir, file));
      for (const f of readdirSync(`${DEMO}/calib`).slice(0, 3)) copyFileSync(join(`${DEMO}/calib`, f), join(dir, f));
      await refused(reason, 'quantize', `${DEMO}/model.onnx`, '--calib', dir, '-o', join(tmp, 'x.onnx'));
    }
  });

  it('an empty folder', async () => {
    const dir = join(tmp, 'empty');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'no images here');
    await refused(/empty: no PNG or JPEG images found/, 'quantize', `${DEMO}/model.onnx`, '--calib', dir, '-o', join(tmp, 'x.onnx'));
  });
});

describe('labels and plans that do not fit the model', () => {
  it('three class folders for a ten-class model', async () => {
    const val = join(tmp, 'val3');
    for (const cls of readdirSync(`${DEMO}/val`).sort().slice(0, 3)) {
      mkdirSync(join(val, cls), { recursive: true });
      for (const f of readdirSync(join(`${DEMO}/val`, cls)).slice(0, 2)) copyFileSync(join(`${DEMO}/val`, cls, f), join(val, cls, f));
    }
    await refused(/the validation set has 3 classes \(0_T-shirt, 1_Trouser, 2_Pullover\) but the model outputs 10/, 'eval', `${DEMO}/model.onnx`, '--val', val);
    await refused(/the validation set has 3 classes/, 'quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '8', '--val', val, '-o', join(tmp, 'x.onnx'));
  });

  it('per-layer bits for layers the model does not have, and bits out of range', async () => {
    const plan = join(tmp, 'other-model.plan.json');
    writeFileSync(plan, JSON.stringify({ method: 'rtn', wbits: 4, abits: 8, headStem8bit: true, layerBits: { 'features.0.0': 8 } }));
    await refused(/the plan's layerBits name a layer this model does not have: "features\.0\.0"; its layers are/, 'quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--calib-size', '8', '--plan', plan, '-o', join(tmp, 'x.onnx'));
    writeFileSync(plan, JSON.stringify({ method: 'rtn', wbits: 16, abits: 8 }));
    await refused(/wbits must be an integer from 2 to 8, got 16/, 'quantize', `${DEMO}/model.onnx`, '--calib', `${DEMO}/calib`, '--plan', plan, '-o', join(tmp, 'x.onnx'));
  });
});
