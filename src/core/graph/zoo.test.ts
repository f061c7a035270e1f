/**
 * The model zoo: does the graph core read the CNNs people export? torchvision's ResNets,
 * MobileNets, EfficientNet, RegNet, MnasNet, SqueezeNet and DenseNet, with seeded random weights
 * and BatchNorm statistics set on random inputs, exported by torch.onnx (scripts/make-zoo.py, into
 * the gitignored .cache/zoo). For each: the codec round trip, canonicalisation, the block partition
 * (algorithms.md §1.7), the first and last layers, and a W8A8 QDQ export, all checked in ONNX Runtime.
 *
 * `LOWBIT_ZOO=resnet18,squeezenet1_1 npx vitest run src/core/graph/zoo.test.ts` runs a subset.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeModel, encodeModel } from '../onnx/codec';
import type { ModelProto } from '../onnx/schema';
import { ModelSession, type Optimization } from '../eval/runtime';
import { canonicalize, type CanonicalizeReport } from './canonicalize';
import { activationQuantPoints, findQuantLayers } from './layers';
import { partitionModel, type Block, type BlockKind } from './partition';
import { summarizeModel } from './summary';
import { roundToNearest } from '../methods/rtn';
import { collectRanges, withOutputs } from '../quant/calibrate';
import { BlockProgram } from '../engine/block-program';
import { WasmConvPool } from '../engine/conv-engine';
import type { Nd } from '../backends/cpu/reference';
import { minMaxPerTensor, type QuantParams } from '../quant/quantizer';
import { exportQdq } from '../export/qdq';
import type { ImageBatches } from '../data/batches';
import { randn, rng } from '../random';
import { ensureZoo, readZoo, ZOO_CLASSES, ZOO_INPUT, ZOO_MODELS, type ZooFiles, type ZooModel } from '../testing/zoo';

// resnet50 is about 4 GMAC an image, run in single-threaded WebAssembly
vi.setConfig({ testTimeout: 10 * 60_000, hookTimeout: 25 * 60_000 });

const selected = (process.env.LOWBIT_ZOO?.split(',').filter(Boolean) ?? ZOO_MODELS) as ZooModel[];
const SAMPLE = ZOO_INPUT.reduce((a, b) => a * b, 1);
/** Calibration: random normal images, as the zoo's BatchNorm statistics were set on. */
const CALIB_IMAGES = 8;
const CALIB_BATCH = 4;

const cosine = (a: Float32Array, b: Float32Array): number => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
};
const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
/** Cosine similarity of each image's logits; the smallest. */
const minCosine = (a: Float32Array, b: Float32Array): number => {
  let min = 1;
  for (let i = 0; i < a.length; i += ZOO_CLASSES) min = Math.min(min, cosine(a.subarray(i, i + ZOO_CLASSES), b.subarray(i, i + ZOO_CLASSES)));
  return min;
};

async function logits(model: ModelProto | Uint8Array, x: Float32Array, optimization: Optimization = 'all'): Promise<Float32Array> {
  const s = await ModelSession.create(model instanceof Uint8Array ? model : encodeModel(model), optimization);
  try {
    const n = x.length / SAMPLE;
    const out = (await s.run(x, [n, ...ZOO_INPUT])).get('logits')!;
    expect(out.dims).toEqual([n, ZOO_CLASSES]);
    return out.data;
  } finally {
    await s.release();
  }
}

function memoryBatches(images: number, batch: number, seed: number): ImageBatches {
  const data = randn(images * SAMPLE, rng(seed));
  return {
    batches: Math.ceil(images / batch),
    count: images,
    batch: async (b: number) => {
      const n = Math.min(batch, images - b * batch);
      return { data: data.subarray(b * batch * SAMPLE, (b * batch + n) * SAMPLE), shape: [n, ...ZOO_INPUT], start: b * batch };
    },
  } as unknown as ImageBatches;
}

/** Ops between a quantizer and the layer it serves: they move, pad or average values. */
const MOVES_OR_POOLS = new Set(['MaxPool', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Transpose', 'Pad', 'GlobalAveragePool', 'AveragePool', 'ReduceMean']);

/** What a block must look like: its id, kind and number of quantizable layers. */
type Expected = readonly [id: string, kind: BlockKind, layers: number];
const ids = (blocks: readonly Block[]): Expected[] => blocks.map((b) => [b.id, b.kind, b.layers.length]);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * The partitions, from the architectures (algorithms.md §1.7), not from the code's output. Block
 * ids are the longest common path of the layer names, which torch.onnx takes from the modules.
 */
const EXPECTED: Record<ZooModel, () => Expected[]> = {
  // stem conv1 (+ReLU; the max-pool goes with layer1.0), 2+2+2+2 BasicBlocks (the first of
  // layers 2–4 with a 1×1 downsample: 3 layers), the FC head
  resnet18: () => [
    ['stem', 'layer', 1],
    ...[1, 2, 3, 4].flatMap((s) => [0, 1].map((i): Expected => [`layer${s}/layer${s}.${i}`, 'residual', i === 0 && s > 1 ? 3 : 2])),
    ['head', 'layer', 1],
  ],
  // 3+4+6+3 Bottlenecks: 1×1, 3×3, 1×1, and a downsample in the first of every stage (layer1.0 too:
  // 64 → 256 channels)
  resnet50: () => [
    ['stem', 'layer', 1],
    ...[3, 4, 6, 3].flatMap((n, s) => range(0, n - 1).map((i): Expected => [`layer${s + 1}/layer${s + 1}.${i}`, 'residual', i === 0 ? 4 : 3])),
    ['head', 'layer', 1],
  ],
  // features.0 stem; 17 InvertedResiduals (t, c, n, s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2)
  // (6,96,3,1) (6,160,3,2) (6,320,1,1): the residual Add only in the 2nd..nth of a row; features.1
  // has no expansion; the non-residual ones end at their linear projection; features.18 1×1 to
  // 1280 + ReLU6 alone; the FC head
  mobilenet_v2: () => {
    const rows = [1, 2, 3, 4, 3, 3, 1];
    const firsts = new Set(rows.map((_, r) => 1 + rows.slice(0, r).reduce((a, b) => a + b, 0)));
    return [
      ['stem', 'layer', 1],
      ...range(1, 17).map((i): Expected => [`features/features.${i}/conv`, firsts.has(i) ? 'plain' : 'residual', i === 1 ? 2 : 3]),
      ['features/features.18/features.18.0/Conv', 'layer', 1],
      ['head', 'layer', 1],
    ];
  },
  // features.0 stem (+hardswish); 11 inverted residuals (in, exp, out, SE, stride): 1 (16,16,16,SE,2)
  // no expansion, 2 (16,72,24,-,2), 3 (24,88,24,-,1), 4 (24,96,40,SE,2), 5–6 (40,240,40,SE,1),
  // 7 (40,120,48,SE,1), 8 (48,144,48,SE,1), 9 (48,288,96,SE,2), 10–11 (96,576,96,SE,1): residual when
  // stride 1 and in = out (3, 5, 6, 8, 10, 11). The squeeze-excitation (pool, 1×1, ReLU, 1×1,
  // hard-sigmoid, Mul) gates the depthwise conv inside its block: 2 more layers. Then features.12
  // (1×1 to 576 + hardswish) and classifier.0 (576 → 1024 + hardswish): plain layers, grouped (up
  // to 3) into the 12th block after the stem, which has no common module path to be named by;
  // the classifier.3 head
  mobilenet_v3_small: () => {
    const residual = new Set([3, 5, 6, 8, 10, 11]);
    const se = new Set([1, 4, 5, 6, 7, 8, 9, 10, 11]);
    return [
      ['stem', 'layer', 1],
      ...range(1, 11).map((i): Expected => [`features/features.${i}/block`, residual.has(i) ? 'residual' : 'plain', (i === 1 ? 2 : 3) + (se.has(i) ? 2 : 0)]),
      ['block12', 'plain', 2],
      ['head', 'layer', 1],
    ];
  },
  // features.0 stem; MBConv stages (expand, stride, layers) (1,1,1) (6,2,2) (6,2,2) (6,2,3) (6,1,3)
  // (6,2,4) (6,1,1), every block with SE (2 layers): residual in all but the first of a stage;
  // features.1.0 has no expansion. features.8 (1×1 to 1280 + SiLU) alone, then the head
  efficientnet_b0: () => [
    ['stem', 'layer', 1],
    ...[1, 2, 2, 3, 3, 4, 1].flatMap((n, s) => range(0, n - 1).map((i): Expected => [`features/features.${s + 1}/features.${s + 1}.${i}/block`, i === 0 ? 'plain' : 'residual', (s === 0 ? 2 : 3) + 2])),
    ['features/features.8/features.8.0/Conv', 'layer', 1],
    ['head', 'layer', 1],
  ],
  // stem 3×3 s2; trunk depths 1, 2, 7, 12 of ResBottleneckBlocks (a 1×1, b 3×3 grouped, c 1×1) with a
  // projection in the first of each stage
  regnet_x_400mf: () => [
    ['stem', 'layer', 1],
    // (the id of a block without projection is its residual function 'f': all its layers are in it)
    ...[1, 2, 7, 12].flatMap((n, s) => range(0, n - 1).map((i): Expected => [`trunk_output/block${s + 1}/block${s + 1}-${i}${i ? '/f' : ''}`, 'residual', i === 0 ? 4 : 3])),
    ['head', 'layer', 1],
  ],
  // layers.0 3×3 s2 stem; layers.3 depthwise + layers.6 1×1 linear (MobileNetV2's t=1 block without
  // the add: plain, ends at the linear 1×1); six stacks (repeats 3,3,3,2,4,1) of _InvertedResidual
  // (1×1, dw, 1×1), residual in all but the first of a stack; layers.14 1×1 to 1280; the FC head
  mnasnet0_5: () => [
    ['stem', 'layer', 1],
    ['layers', 'plain', 2], // layers.3 and layers.6 share only 'layers'
    ...[3, 3, 3, 2, 4, 1].flatMap((n, s) => range(0, n - 1).map((i): Expected => [`layers/layers.${s + 8}/layers.${s + 8}.${i}/layers`, i === 0 ? 'plain' : 'residual', 3])),
    ['layers/layers.14/Conv', 'layer', 1],
    ['head', 'layer', 1],
  ],
  // features.0 stem; 8 Fire modules (squeeze 1×1 + ReLU feeding expand 1×1 and expand 3×3, each
  // + ReLU, concatenated) in features.3, 4, 6, 7, 9–12 (max-pools between go with the next fire);
  // the head is classifier.1, a 1×1 conv to 1000 classes + ReLU, then pooling
  squeezenet1_1: () => [
    ['stem', 'layer', 1],
    ...[3, 4, 6, 7, 9, 10, 11, 12].map((i): Expected => [`features/features.${i}`, 'branch', 3]),
    ['head', 'layer', 1],
  ],
  // conv0 stem; dense blocks of 6, 12, 24, 16 dense layers (BN, ReLU, 1×1, ReLU, 3×3, joined to
  // the running features by a Concat), transitions (BN, ReLU, 1×1, average pool) between; norm5
  // and its ReLU go with the head
  densenet121: () => [
    ['stem', 'layer', 1],
    ...[6, 12, 24, 16].flatMap((n, b): Expected[] => [
      ...range(1, n).map((i): Expected => [`features/denseblock${b + 1}/denselayer${i}`, 'branch', 2]),
      ...(b < 3 ? [[`features/transition${b + 1}/conv/Conv`, 'layer', 1] as Expected] : []),
    ]),
    ['head', 'layer', 1],
  ],
};

/** First and last quantizable layers, by their torch module names. */
const FIRST_LAST: Record<ZooModel, readonly [string, string]> = {
  resnet18: ['/conv1/Conv', '/fc/Gemm'],
  resnet50: ['/conv1/Conv', '/fc/Gemm'],
  mobilenet_v2: ['/features/features.0/features.0.0/Conv', '/classifier/classifier.1/Gemm'],
  mobilenet_v3_small: ['/features/features.0/features.0.0/Conv', '/classifier/classifier.3/Gemm'],
  efficientnet_b0: ['/features/features.0/features.0.0/Conv', '/classifier/classifier.1/Gemm'],
  regnet_x_400mf: ['/stem/stem.0/Conv', '/fc/Gemm'],
  mnasnet0_5: ['/layers/layers.0/Conv', '/classifier/classifier.1/Gemm'],
  squeezenet1_1: ['/features/features.0/Conv', '/classifier/classifier.1/Conv'],
  densenet121: ['/features/conv0/Conv', '/classifier/Gemm'],
};

beforeAll(() => ensureZoo(selected));

describe.each(selected)('%s', (name) => {
  let files: ZooFiles;
  let model: ModelProto;
  let canonical: ModelProto;
  let report: CanonicalizeReport;
  /** Two images: the zoo's fixed sample and one more random normal image. */
  let x: Float32Array;
  /** ONNX Runtime's logits of the file as exported. */
  let fp: Float32Array;

  beforeAll(async () => {
    files = readZoo(name);
    model = decodeModel(files.bytes);
    ({ model: canonical, report } = canonicalize(model));
    x = new Float32Array(2 * SAMPLE);
    x.set(files.sample);
    x.set(randn(SAMPLE, rng(7)), SAMPLE);
    fp = await logits(files.bytes, x);
  });

  it('runs in ONNX Runtime with the logits PyTorch computed', () => {
    expect(maxAbsDiff(fp.subarray(0, ZOO_CLASSES), files.torchLogits) / maxAbs(files.torchLogits)).toBeLessThan(1e-4);
  });

  it("infers every layer's output shape: its layers and multiply-accumulates are PyTorch's", () => {
    const summary = summarizeModel(model);
    expect(summary.layers.length).toBe(files.torch.layers);
    expect(summary.macs).toBe(files.torch.macs);
    expect(summary.inputs).toEqual([{ name: 'input', type: 'float', shape: ['batch', ...ZOO_INPUT] }]);
  });

  it('decodes and re-encodes to a model ONNX Runtime runs with identical outputs', async () => {
    const encoded = encodeModel(model);
    // a second round trip writes the same bytes (compared by hand: toEqual walks 100 MB element by element)
    const again = encodeModel(decodeModel(encoded));
    expect(again.length).toBe(encoded.length);
    expect(again.findIndex((v, i) => v !== encoded[i])).toBe(-1);
    const out = await logits(encoded, x);
    expect(maxAbsDiff(out, fp)).toBe(0);
  });

  it('canonicalises to a model with the same outputs', async () => {
    const out = await logits(canonical, x);
    const diff = maxAbsDiff(out, fp) / maxAbs(fp);
    console.log(`${name}: canonical max |Δ| ${diff.toExponential(2)} of max |logit|; ${JSON.stringify(report)}`);
    expect(diff).toBeLessThan(1e-4);
  });

  it('partitions into the blocks of its architecture', () => {
    const p = partitionModel(canonical, 'block');
    expect(ids(p.blocks)).toEqual(EXPECTED[name]());
    expect(p.blocks.flatMap((b) => b.layers)).toEqual(findQuantLayers(canonical).map((l) => l.name));
    p.blocks.forEach((b, i) => expect(b.input).toBe(i === 0 ? 'input' : p.blocks[i - 1]!.output));
    expect(p.blocks.at(-1)!.output).toBe('logits');
  });

  it('finds the first and the last layer', () => {
    const layers = findQuantLayers(canonical);
    expect(layers.filter((l) => l.isFirst).map((l) => l.name)).toEqual([FIRST_LAST[name][0]]);
    expect(layers.filter((l) => l.isLast).map((l) => l.name)).toEqual([FIRST_LAST[name][1]]);
    expect(layers[0]!.isFirst && layers.at(-1)!.isLast).toBe(true);
  });

  it("runs every block through the reconstruction engine with ONNX Runtime's outputs, and back-propagates through it", async () => {
    const layers = findQuantLayers(canonical);
    const { blocks } = partitionModel(canonical, 'block');
    const one = x.subarray(SAMPLE, 2 * SAMPLE);
    const names = [...new Set(blocks.flatMap((b) => [b.input, b.output]))].filter((n) => n !== 'input');
    const s = await ModelSession.create(encodeModel(withOutputs(canonical, names)), 'none');
    const ref = new Map<string, Nd>([['input', { shape: [1, ...ZOO_INPUT], data: one }]]);
    try {
      for (const [k, v] of await s.run(one, [1, ...ZOO_INPUT], names)) ref.set(k, { shape: [...v.dims], data: v.data });
    } finally {
      await s.release();
    }
    const pool = new WasmConvPool();
    let worst = 0;
    for (const block of blocks) {
      const program = BlockProgram.compile(canonical, block, layers, await pool.factory());
      const weights = program.slots.map((sl) => sl.weight);
      const tape = program.forward(ref.get(block.input)!, weights);
      const want = ref.get(block.output)!;
      expect(tape.output.shape, block.id).toEqual(want.shape);
      const err = maxAbsDiff(tape.output.data, want.data) / Math.max(1e-6, maxAbs(want.data));
      worst = Math.max(worst, err);
      expect(err, `block ${block.id}`).toBeLessThan(1e-3);
      // the backward pass reaches every weight of the block with a finite gradient
      const g = program.backward(tape, weights, { shape: tape.output.shape, data: Float32Array.from(tape.output.data, (v) => Math.sign(v)) });
      g.weights.forEach((dw, i) => {
        expect(dw, `${block.id}: ${program.slots[i]!.layer.name}`).not.toBeNull();
        expect(dw!.data.every(Number.isFinite)).toBe(true);
      });
    }
    console.log(`${name}: ${blocks.length} blocks through the engine, worst relative output error ${worst.toExponential(2)}`);
  });

  it('exports W8A8 QDQ that runs in ONNX Runtime with logits close to the float model', async () => {
    const layers = findQuantLayers(canonical);
    const weights = layers.map((l) => roundToNearest(l, 8));
    // activation ranges with the weights already quantized, as the pipeline measures them
    const weightQuantized = exportQdq({ model: canonical, weights, activations: new Map(), weightFormat: 'float' });
    const points = activationQuantPoints(canonical);
    // every layer but the first reads a quantized activation (through pooling and reshapes): none is missed
    const quantized = new Set(points);
    const producer = new Map(canonical.graph!.node!.flatMap((n) => (n.output ?? []).map((o) => [o, n] as const)));
    const source = (t: string): string => {
      const p = producer.get(t);
      return p && MOVES_OR_POOLS.has(p.opType ?? '') ? source(p.input![0]!) : t;
    };
    expect(layers.slice(1).filter((l) => !quantized.has(source(l.node.input![0]!))).map((l) => l.name)).toEqual([]);
    const ranges = await collectRanges(weightQuantized, points, memoryBatches(CALIB_IMAGES, CALIB_BATCH, 11));
    const activations = new Map<string, QuantParams>([...ranges].map(([t, r]) => [t, minMaxPerTensor(r.min, r.max, 8, false, false)]));
    const exported = encodeModel(exportQdq({ model: canonical, weights, activations }));
    const quant = await logits(exported, x, 'none');
    const fused = await logits(exported, x, 'all');
    const [cq, cf] = [minCosine(quant, fp), minCosine(fused, fp)];
    console.log(`${name}: W8A8 ${layers.length} layers, ${points.length} activation quantizers; cosine to float: simulated ${cq.toFixed(5)}, fused ${cf.toFixed(5)}`);
    expect(cq).toBeGreaterThanOrEqual(0.99);
    expect(cf).toBeGreaterThanOrEqual(0.99);
  });
});
