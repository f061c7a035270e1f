import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { conversionsOf, decodeImage, ImageBatches } from './data/batches';
import { DatasetError, type ImageFile } from './data/image-set';
import { decodePng, ImageDecodeError } from './data/png';
import { decodeNpySample, npySamples, parseNpy, writeNpy } from './data/npy';
import { FASHION_MNIST, IMAGENET, openInputDims, preprocessInto } from './data/preprocess';
import { batchSizeFor, checkClassCount, ModelInputError } from './pipeline';
import { LabelMismatchError } from './eval/accuracy';
import { checkPlanFits, parsePlan, PlanError } from './plan';
import type { ModelSummary } from './graph/summary';
import { encode, chunk, deflate, ihdr, png } from './testing/png-writer';

const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(`./data/__fixtures__/${name}`, import.meta.url)));

/** A summary with only what the input and output checks read. */
const summary = (input: (number | string)[], output: (number | string)[] = ['batch', 10], type = 'float'): ModelSummary =>
  ({ inputs: [{ name: 'x', type, shape: input }], outputs: [{ name: 'y', type: 'float', shape: output }] }) as unknown as ModelSummary;

describe('images the studio cannot read are refused by name', () => {
  it('RGB and grey JPEGs decode; Adobe CMYK JPEG and GIF files say what they are and what to do', async () => {
    for (const [name, channels] of [['rgb.jpg', 3], ['grey.jpg', 1]] as const) {
      const img = await decodeImage({ path: `calib/${name}`, bytes: fixture(name) });
      expect([img.width, img.height, img.channels]).toEqual([8, 8, channels]);
    }
    await expect(decodeImage({ path: 'calib/cmyk.jpg', bytes: fixture('cmyk.jpg') })).rejects.toThrow(new ImageDecodeError('Unsupported JPEG: CMYK and YCCK JPEG (4 components) are not supported; convert the image to RGB'));
    await expect(decodeImage({ path: 'a.gif', bytes: fixture('animated.gif') })).rejects.toThrow(/a\.gif: GIF images are not supported; convert them to PNG/);
  });

  it('a tiny PNG whose header promises a huge image is refused before anything that size is allocated', async () => {
    const z = Array.from(await deflate(new Uint8Array(64)));
    const err = await decodePng(png(ihdr(16384, 4096, 16, 6), chunk('IDAT', z), chunk('IEND'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDecodeError);
    expect((err as Error).message).toMatch(/too short for a 16384x4096 image/);
  });

  it('a .npy file cut inside its header is a DatasetError, not a RangeError', () => {
    expect(() => parseNpy(Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 10), 'x.npy')).toThrow(new DatasetError('x.npy: the .npy header is truncated'));
    expect(() => parseNpy(Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 9, 0, 0, 0, 0, 0), 'x.npy')).toThrow(/format version 9 is not supported/);
  });

  it('a .npy image with a side of 0 is refused, not read as NaN pixels', () => {
    expect(() => decodeNpySample(writeNpy([3, 0, 4], new Float32Array(0)), 's.npy')).toThrow(new DatasetError('s.npy: an empty image (0×4)'));
    expect(() => npySamples(parseNpy(writeNpy([2, 1, 5, 0], new Float32Array(0)), 'a.npy'), 'a.npy')).toThrow(/samples of shape \(1, 5, 0\) hold no pixels/);
  });
});

describe('images that differ from the model input are converted, and the run says so', () => {
  const img = async (width: number, height: number, colorType: number, depth = 8): Promise<ImageFile['bytes']> => {
    const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType]!;
    return encode({ width, height, colorType, depth, samples: Array.from({ length: width * height * channels }, (_, i) => i % (depth === 16 ? 65536 : 256)) });
  };

  it('resize, colour to grey, alpha and animation: once per kind, naming the first image', async () => {
    const files = [
      { path: 'c/a.png', bytes: await img(32, 32, 2) },
      { path: 'c/b.png', bytes: await img(30, 20, 6) },
      { path: 'c/c.png', bytes: fixture('animated.png') },
    ];
    const told: string[] = [];
    const batches = new ImageBatches(files, FASHION_MNIST, 2, (m) => told.push(m));
    await batches.batch(0);
    expect(told).toEqual([
      "c/a.png is 32×32: images are resized (bilinear) to the model's 28×28",
      'c/a.png is in colour: images are converted to grey (ITU-R 601 luma) for the 1-channel model',
      'c/b.png has an alpha channel, which is ignored',
    ]);
    // the animated PNG is resized and in colour too, but those were said already
    await batches.batch(1);
    expect(told.slice(3)).toEqual(['c/c.png is an animated PNG: only its first frame is used']);
  });

  it('grey into an RGB model is stated; ImageNet resize-and-crop is the preprocessing, not a conversion', async () => {
    const grey = await decodePng(await img(300, 260, 0));
    expect(conversionsOf(grey, IMAGENET).map((c) => c.kind)).toEqual(['to-rgb']);
    expect(conversionsOf(grey, { ...IMAGENET, resize: undefined }).map((c) => c.kind)).toEqual(['resize', 'to-rgb']);
  });

  it('16-bit PNGs are read at full precision, with no warning', async () => {
    const img16 = await decodePng(fixture('grey16.png'));
    const expected = JSON.parse(readFileSync(new URL('./data/__fixtures__/grey16.json', import.meta.url), 'utf8')) as { data: number[]; width: number; height: number };
    const out = new Float32Array(expected.width * expected.height);
    const spec = { size: [expected.height, expected.width] as const, channels: 1 as const, mean: [0], std: [1] };
    preprocessInto(img16, spec, out, 0);
    expect(Array.from(out)).toEqual(expected.data.map((v) => Math.fround(v / 65535)));
    expect(conversionsOf(img16, spec)).toEqual([]);
  });
});

describe('model inputs the studio cannot take, or must be told about', () => {
  it('a 2-D (non-image) input, an integer input and several inputs are refused with the shape', () => {
    expect(() => batchSizeFor(summary(['batch', 784]), FASHION_MNIST)).toThrow(new ModelInputError('the model\'s input "x" has shape [batch, 784]; an image model takes N×C×H×W'));
    expect(() => batchSizeFor(summary(['batch', 1, 28, 28], undefined, 'int64'), FASHION_MNIST)).toThrow(/is int64, not a float image tensor/);
  });

  it('dynamic sizes and unrecorded shapes are left to the user, and then taken as given', () => {
    expect(openInputDims(['batch', 3, 'h', 'w'])).toEqual({ channels: false, size: true });
    expect(openInputDims(['batch', 'c', 224, 224])).toEqual({ channels: true, size: false });
    expect(openInputDims([])).toEqual({ channels: true, size: true });
    expect(openInputDims([1, 1, 28, 28])).toEqual({ channels: false, size: false });
    expect(batchSizeFor(summary([]), FASHION_MNIST)).toBe(32);
    expect(batchSizeFor(summary([8, 1, 'h', 'w']), FASHION_MNIST)).toBe(8);
  });
});

describe('labels and plans that do not match the model', () => {
  it('class folders must number the model outputs', () => {
    expect(() => checkClassCount(summary(['b', 1, 28, 28]), ['0_a', '1_b', '2_c'])).toThrow(LabelMismatchError);
    expect(() => checkClassCount(summary(['b', 1, 28, 28]), ['0_a', '1_b', '2_c'])).toThrow(/has 3 classes \(0_a, 1_b, 2_c\) but the model outputs 10/);
    expect(() => checkClassCount(summary(['b', 1, 28, 28]), Array.from({ length: 10 }, (_, i) => String(i)))).not.toThrow();
    // an output whose class count is not fixed is checked while evaluating (evaluateAccuracy)
    expect(() => checkClassCount(summary(['b', 1, 28, 28], ['b', 'k']), ['a'])).not.toThrow();
  });

  it('per-layer bits naming layers the model lacks are refused with both lists', () => {
    const plan = parsePlan({ method: 'rtn', wbits: 4, abits: 8, layerBits: { 'conv1': 4, 'layer9.conv': 2 } });
    expect(() => checkPlanFits(plan, ['conv1', 'fc'])).toThrow(new PlanError('the plan\'s layerBits name a layer this model does not have: "layer9.conv"; its layers are "conv1", "fc"'));
    expect(() => checkPlanFits(plan, ['conv1', 'layer9.conv'])).not.toThrow();
  });

  it('bits out of range and unknown methods are PlanErrors', () => {
    expect(() => parsePlan({ method: 'rtn', wbits: 12, abits: 8 })).toThrow(/wbits must be an integer from 2 to 8, got 12/);
    expect(() => parsePlan({ method: 'rtn', wbits: 4, abits: 8, layerBits: { conv1: 1 } })).toThrow(/layerBits must map layer names to bit widths from 2 to 8/);
    expect(() => parsePlan({ method: 'gptq', wbits: 4, abits: 8 })).toThrow(/unknown method "gptq"/);
  });
});
