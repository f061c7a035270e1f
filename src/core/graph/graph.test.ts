import { describe, expect, it } from 'vitest';
import { canonicalize } from './canonicalize';
import { activationQuantPoints, findQuantLayers } from './layers';
import { encodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import { tinyResNet } from '../testing/tiny-resnet';
import { denseNet, fireNet, mobileNetV2, squeezeExciteNet } from '../testing/graphs';
import { randn, rng } from '../random';
import type { ModelProto } from '../onnx/schema';

async function logits(model: ModelProto, x: Float32Array): Promise<Float32Array> {
  const s = await ModelSession.create(encodeModel(model), 'none');
  const out = (await s.run(x, [4, 1, 8, 8])).get('logits')!.data;
  await s.release();
  return out;
}

describe('canonicalize', () => {
  it('folds every BatchNormalization into its Conv and computes the same function (checked in ONNX Runtime)', async () => {
    const model = tinyResNet(7);
    const { model: folded, report } = canonicalize(model);
    expect(report.foldedBatchNorms).toBe(6);
    expect(folded.graph!.node!.some((n) => n.opType === 'BatchNormalization')).toBe(false);
    const x = randn(4 * 64, rng(11));
    const [a, b] = [await logits(model, x), await logits(folded, x)];
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
  });

  it('keeps a BatchNormalization whose input is not a layer output', () => {
    const model = tinyResNet(3);
    const g = model.graph!;
    // put a BN directly on the network input
    g.node!.unshift({ name: 'inbn', opType: 'BatchNormalization', input: ['input', 'stem.conv.bn.gamma', 'stem.conv.bn.beta', 'stem.conv.bn.mean', 'stem.conv.bn.var'], output: ['input_bn'] });
    g.node![1]!.input![0] = 'input_bn';
    // make shapes agree: this BN has 4 channels but the input has 1; only the structure matters here
    const { report, model: out } = canonicalize(model);
    expect(report.foldedBatchNorms).toBe(6);
    expect(out.graph!.node!.filter((n) => n.opType === 'BatchNormalization').map((n) => n.name)).toEqual(['inbn']);
  });

  it('removes Identity nodes and rewires their consumers', () => {
    const model = tinyResNet(2);
    const g = model.graph!;
    const i = g.node!.findIndex((n) => n.name === 'pool');
    g.node!.splice(i + 1, 0, { name: 'id', opType: 'Identity', input: ['pool_out'], output: ['pool_id'] });
    g.node!.find((n) => n.name === 'flatten')!.input = ['pool_id'];
    const { model: out, report } = canonicalize(model);
    expect(report.removedIdentities).toBe(1);
    expect(out.graph!.node!.find((n) => n.name === 'flatten')!.input).toEqual(['pool_out']);
  });
});

describe('quantizable layers and activation quantizers', () => {
  const model = canonicalize(tinyResNet()).model;

  it('finds the convolutions and the linear head in graph order, first and last marked', () => {
    const layers = findQuantLayers(model);
    expect(layers.map((l) => l.name)).toEqual(['stem.conv', 'b1.conv1', 'b1.conv2', 'b2.conv1', 'b2.conv2', 'b2.down', 'fc']);
    expect(layers[0]!.isFirst && layers[6]!.isLast).toBe(true);
    expect(layers[6]!.channelAxis).toBe(0);
  });

  it('quantizes activations after ReLU and after the residual add, never conv outputs feeding an add (algorithms.md §1.4)', () => {
    const points = activationQuantPoints(model);
    expect(points).toEqual(['stem.relu_out', 'b1.relu1_out', 'b1.relu2_out', 'b2.relu1_out', 'b2.relu2_out']);
  });

  it("quantizes a linear projection's output that is the next residual block's input, not the one ending a residual branch", () => {
    const points = activationQuantPoints(canonicalize(mobileNetV2()).model);
    expect(points).toContain('ir2.project.bn_out');
    expect(points).not.toContain('ir3.project.bn_out');
    expect(points).toContain('ir3.add_out');
  });

  it('quantizes SiLU and hard-swish written as products, and the squeeze-excitation output, not the gates', () => {
    const points = activationQuantPoints(canonicalize(squeezeExciteNet()).model);
    const block = (b: string) => [`${b}.expand.silu.mul_out`, `${b}.dw.silu.mul_out`, `${b}.se.relu_out`, `${b}.se.scale_out`];
    expect(points).toEqual(['stem.hswish.mul_out', ...block('b1'), 'b1.project.bn_out', ...block('b2'), 'b2.add_out', 'last.hswish.mul_out']);
  });

  it('quantizes Fire concatenations a layer reads, and not the last ReLU that only pools into the logits', () => {
    const points = activationQuantPoints(canonicalize(fireNet()).model);
    const fire = (f: string) => [`${f}.squeeze.relu_out`, `${f}.expand1.relu_out`, `${f}.expand3.relu_out`, `${f}.concat_out`];
    expect(points).toEqual(['stem.relu_out', ...fire('fire1'), ...fire('fire2')]);
  });

  it("quantizes each dense layer's new features once, not the running concatenation", () => {
    const points = activationQuantPoints(canonicalize(denseNet()).model);
    const layer = (l: string) => [`${l}.relu1_out`, `${l}.relu2_out`, `${l}.conv2.bn_out`];
    expect(points).toEqual(['stem.relu_out', ...['d1.l1', 'd1.l2', 'd1.l3'].flatMap(layer), 't1.relu_out', 't1.conv.bn_out', ...['d2.l1', 'd2.l2'].flatMap(layer), 'final.relu_out']);
  });
});

describe('DenseNet concatenations', () => {
  it('drops one-input Concats and nests the N-ary ones, computing the same values', async () => {
    const model = denseNet(3);
    const { model: out, report } = canonicalize(model);
    expect(report).toMatchObject({ removedIdentities: 2, nestedConcats: 3 });
    const concats = out.graph!.node!.filter((n) => n.opType === 'Concat');
    expect(concats.map((n) => n.input!.length)).toEqual([2, 2, 2, 2, 2]);
    expect(concats.find((n) => n.name === 'd1.concat')!.input![0]).toBe('d1.l3.concat_out');
    const x = randn(2 * 3 * 16 * 16, rng(4));
    const run = async (m: ModelProto): Promise<Float32Array> => {
      const s = await ModelSession.create(encodeModel(m), 'none');
      const y = (await s.run(x, [2, 3, 16, 16])).get('logits')!.data;
      await s.release();
      return y;
    };
    const [a, b] = [await run(model), await run(out)];
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
  });
});

describe('shape-chain folding', () => {
  it('folds the Shape→Gather→Unsqueeze→Concat→Reshape flatten that PyTorch emits, keeping the batch dynamic', async () => {
    const model = tinyResNet(4);
    const g = model.graph!;
    const at = g.node!.findIndex((n) => n.name === 'flatten');
    const { int64Tensor } = await import('../onnx/tensor-data');
    g.initializer!.push(int64Tensor('zero', [], [0]), int64Tensor('minus1', [1], [-1]), int64Tensor('axes0', [1], [0]));
    g.node!.splice(
      at,
      1,
      { name: 'shape', opType: 'Shape', input: ['pool_out'], output: ['s'] },
      { name: 'gather', opType: 'Gather', input: ['s', 'zero'], output: ['n'], attribute: [{ name: 'axis', type: 2, i: 0 }] },
      { name: 'unsq', opType: 'Unsqueeze', input: ['n', 'axes0'], output: ['n1'] },
      { name: 'cat', opType: 'Concat', input: ['n1', 'minus1'], output: ['target'], attribute: [{ name: 'axis', type: 2, i: 0 }] },
      { name: 'flatten', opType: 'Reshape', input: ['pool_out', 'target'], output: ['flatten_out'] },
    );
    const { model: out, report } = canonicalize(model);
    expect(report.foldedShapeChains).toBe(1);
    expect(out.graph!.node!.map((n) => n.opType)).not.toContain('Shape');
    expect(out.graph!.node!.map((n) => n.opType)).not.toContain('Concat');
    const x = randn(4 * 64, rng(2));
    const [a, b] = [await logits(model, x), await logits(out, x)];
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
  });
});

describe('MatMul + Add', () => {
  it('becomes one Gemm layer with its bias, computing the same function', async () => {
    const model = tinyResNet(8);
    const g = model.graph!;
    const fc = g.node!.findIndex((n) => n.name === 'fc');
    const { floatTensor, tensorToFloat32 } = await import('../onnx/tensor-data');
    const w = g.initializer!.find((t) => t.name === 'fc.weight')!;
    const [K, C] = [w.dims![0]!, w.dims![1]!];
    const wv = tensorToFloat32(w);
    const wt = new Float32Array(C * K);
    for (let k = 0; k < K; k++) for (let c = 0; c < C; c++) wt[c * K + k] = wv[k * C + c]!;
    g.initializer!.push(floatTensor('fc.wT', [C, K], wt), { ...g.initializer!.find((t) => t.name === 'fc.bias')!, name: 'fc.b2', dims: [1, K] });
    g.node!.splice(fc, 1, { name: 'mm', opType: 'MatMul', input: ['flatten_out', 'fc.wT'], output: ['mm_out'] }, { name: 'addb', opType: 'Add', input: ['fc.b2', 'mm_out'], output: ['logits'] });
    const { model: out, report } = canonicalize(model);
    expect(report.fusedLinear).toBe(1);
    const layers = findQuantLayers(out);
    expect(layers.at(-1)).toMatchObject({ kind: 'gemm', channelAxis: 1, isLast: true });
    expect(layers.at(-1)!.bias).not.toBeNull();
    const x = randn(4 * 64, rng(6));
    const [a, b] = [await logits(model, x), await logits(out, x)];
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
  });
});

describe('activationKind', () => {
  it('recognises Clip(0, 6) as ReLU6 with bounds as inputs or as attributes', async () => {
    const { activationKind } = await import('./layers');
    const { GraphIndex } = await import('./graph-index');
    const { floatTensor } = await import('../onnx/tensor-data');
    const graph = {
      node: [
        { opType: 'Clip', input: ['x', 'lo', 'hi'], output: ['a'] },
        { opType: 'Clip', input: ['x'], output: ['b'], attribute: [{ name: 'min', type: 1, f: 0 }, { name: 'max', type: 1, f: 6 }] },
        { opType: 'Clip', input: ['x', 'lo', 'one'], output: ['c'] },
        { opType: 'Relu', input: ['x'], output: ['d'] },
      ],
      initializer: [floatTensor('lo', [], Float32Array.of(0)), floatTensor('hi', [], Float32Array.of(6)), floatTensor('one', [], Float32Array.of(1))],
    };
    const index = new GraphIndex(graph);
    expect(graph.node.map((n) => activationKind(n, index))).toEqual(['relu6', 'relu6', 'clip', 'relu']);
  });
});
