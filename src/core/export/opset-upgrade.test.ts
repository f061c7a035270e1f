import { describe, expect, it } from 'vitest';
import { defaultOpsetVersion, minIrVersion, upgradeOpset } from './opset-upgrade';
import { exportQdq } from './qdq';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { roundToNearest } from '../methods/rtn';
import { encodeModel } from '../onnx/codec';
import { AttributeType, DataType, type Attribute, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from '../onnx/schema';
import { floatTensor, int64Tensor } from '../onnx/tensor-data';
import { encodeUtf8 } from '../onnx/wire';
import { ModelSession } from '../eval/runtime';
import { randn, rng } from '../random';

// ---- building tiny models ----

const f = (name: string, v: number): Attribute => ({ name, type: AttributeType.FLOAT, f: v });
const i = (name: string, v: number): Attribute => ({ name, type: AttributeType.INT, i: v });
const ints = (name: string, v: number[]): Attribute => ({ name, type: AttributeType.INTS, ints: v });
const floats = (name: string, v: number[]): Attribute => ({ name, type: AttributeType.FLOATS, floats: v });
const s = (name: string, v: string): Attribute => ({ name, type: AttributeType.STRING, s: encodeUtf8(v) });
const node = (opType: string, input: string[], output: string[], ...attribute: Attribute[]): NodeProto => ({ name: `${opType}_${output[0]}`, opType, input, output, attribute });

interface Case {
  readonly name: string;
  readonly opset: number;
  readonly nodes: NodeProto[];
  readonly inits?: TensorProto[];
  readonly shape: number[];
  /** Float outputs compared; 'y' unless named. */
  readonly outputs?: string[];
  /** Declare the input's shape (rank known); false leaves only its element type. */
  readonly declareShape?: boolean;
  /**
   * The old model's outputs computed by hand, for old models ONNX Runtime does not load (it has
   * kernels for most ops from opset 7 only). Every other case compares ONNX Runtime with itself.
   */
  readonly expected?: (x: Float32Array) => Record<string, Float32Array>;
  /** Targets other than 13 and 21 (a model above 13 cannot go to 13). */
  readonly targets?: number[];
  /** What the upgraded graph must look like. */
  readonly check?: (g: GraphProto, target: number) => void;
}

function buildModel(c: Case): ModelProto {
  const dims = c.declareShape === false ? undefined : { dim: c.shape.map((d) => ({ dimValue: d })) };
  return {
    irVersion: minIrVersion(c.opset),
    opsetImport: [{ domain: '', version: c.opset }],
    graph: {
      name: c.name,
      node: c.nodes,
      initializer: c.inits ?? [],
      input: [{ name: 'x', type: { tensorType: { elemType: DataType.FLOAT, ...(dims ? { shape: dims } : {}) } } }],
      output: (c.outputs ?? ['y']).map((name) => ({ name, type: { tensorType: { elemType: DataType.FLOAT } } })),
    },
  };
}

async function runAll(model: ModelProto, x: Float32Array, shape: number[]): Promise<Record<string, Float32Array>> {
  const session = await ModelSession.create(encodeModel(model), 'none');
  const out = await session.run(x, shape);
  await session.release();
  return Object.fromEntries([...out].map(([k, v]) => [k, v.data]));
}

/** Identical, or within 1e-6 relative to the value's magnitude (at least 1). */
function expectSame(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let k = 0; k < expected.length; k++) {
    if (Number.isNaN(expected[k]!) && Number.isNaN(actual[k]!)) continue;
    worst = Math.max(worst, Math.abs(actual[k]! - expected[k]!) / Math.max(1, Math.abs(expected[k]!)));
  }
  expect(worst).toBeLessThanOrEqual(1e-6);
}

const ops = (g: GraphProto): string[] => (g.node ?? []).map((n) => n.opType ?? '');
const only = (g: GraphProto, op: string): NodeProto => {
  const found = (g.node ?? []).filter((n) => n.opType === op);
  expect(found).toHaveLength(1);
  return found[0]!;
};
const attrNames = (n: NodeProto): string[] => (n.attribute ?? []).map((a) => a.name ?? '');
const initValues = (g: GraphProto, name: string): number[] => {
  const t = g.initializer!.find((x) => x.name === name)!;
  return t.dataType === DataType.INT64 ? Array.from(new BigInt64Array(t.rawData!.slice().buffer), Number) : Array.from(new Float32Array(t.rawData!.slice().buffer));
};

// ---- hand-computed references for old opsets ONNX Runtime cannot load ----

/** Row-major strides. */
const stridesOf = (dims: number[]): number[] => dims.map((_, k) => dims.slice(k + 1).reduce((a, b) => a * b, 1));
/** Channel index of element `k` of an NCHW-like tensor. */
const channelOf = (k: number, dims: number[]): number => Math.floor(k / stridesOf(dims)[1]!) % dims[1]!;

const CASES: Case[] = [
  // Clip-11: bounds become inputs, an absent bound an empty input
  {
    name: 'Clip-9 min and max', opset: 9, shape: [2, 3, 4],
    nodes: [node('Clip', ['x'], ['y'], f('min', -0.5), f('max', 0.7))],
    check: (g) => {
      const c = only(g, 'Clip');
      expect(attrNames(c)).toEqual([]);
      expect(initValues(g, c.input![1]!)).toEqual([-0.5]);
      expect(initValues(g, c.input![2]!)).toEqual([Math.fround(0.7)]);
    },
  },
  { name: 'Clip-6 min only', opset: 6, shape: [2, 3, 4], nodes: [node('Clip', ['x'], ['y'], f('min', 0))], check: (g) => expect(only(g, 'Clip').input).toHaveLength(2) },
  { name: 'Clip-10 max only', opset: 10, shape: [2, 3, 4], nodes: [node('Clip', ['x'], ['y'], f('max', 0.3))], check: (g) => expect(only(g, 'Clip').input![1]).toBe('') },
  { name: 'Clip-9 without bounds', opset: 9, shape: [2, 3, 4], nodes: [node('Clip', ['x'], ['y'])], check: (g) => expect(only(g, 'Clip').input).toEqual(['x']) },
  // Pad-11: pads and value become inputs, mode stays
  {
    name: 'Pad-9 constant with value', opset: 9, shape: [1, 2, 3, 4],
    nodes: [node('Pad', ['x'], ['y'], ints('pads', [0, 0, 1, 2, 0, 0, 2, 1]), f('value', 1.5))],
    check: (g) => expect(attrNames(only(g, 'Pad'))).toEqual([]),
  },
  { name: 'Pad-10 reflect', opset: 10, shape: [1, 2, 4, 5], nodes: [node('Pad', ['x'], ['y'], ints('pads', [0, 0, 1, 2, 0, 0, 2, 1]), s('mode', 'reflect'))], check: (g) => expect(attrNames(only(g, 'Pad'))).toEqual(['mode']) },
  { name: 'Pad-7 edge', opset: 7, shape: [1, 2, 4, 5], nodes: [node('Pad', ['x'], ['y'], ints('pads', [0, 1, 0, 2, 0, 0, 3, 0]), s('mode', 'edge'))] },
  // Squeeze, Unsqueeze, ReduceSum at 13: axes become an input
  {
    name: 'Squeeze-11 and Unsqueeze-11 with negative axes', opset: 11, shape: [2, 1, 3, 1],
    nodes: [node('Squeeze', ['x'], ['sq'], ints('axes', [1, -1])), node('Unsqueeze', ['sq'], ['y'], ints('axes', [0, -1]))],
    check: (g) => {
      expect(initValues(g, only(g, 'Squeeze').input![1]!)).toEqual([1, -1]);
      expect(initValues(g, only(g, 'Unsqueeze').input![1]!)).toEqual([0, -1]);
    },
  },
  { name: 'ReduceSum-11 axes, keepdims=0', opset: 11, shape: [2, 3, 4], nodes: [node('ReduceSum', ['x'], ['y'], ints('axes', [1]), i('keepdims', 0))], check: (g) => expect(only(g, 'ReduceSum').input).toHaveLength(2) },
  { name: 'ReduceSum-11 over everything', opset: 11, shape: [2, 3, 4], nodes: [node('ReduceSum', ['x'], ['y'])], check: (g) => expect(only(g, 'ReduceSum').input).toEqual(['x']) },
  { name: 'ReduceMean-11 axes', opset: 11, shape: [2, 3, 4, 5], nodes: [node('ReduceMean', ['x'], ['y'], ints('axes', [2, 3]))] },
  // the other reductions at 18 (only the 21 target crosses it)
  ...['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'].map(
    (op): Case => ({
      name: `${op}-13 axes`, opset: 13, shape: [2, 3, 4],
      // |x| + 0.5: positive, so the logarithms are defined, and the product stays moderate
      inits: [floatTensor('half', [], Float32Array.of(0.5))],
      nodes: [node('Abs', ['x'], ['a']), node('Add', ['a', 'half'], ['p']), node(op, ['p'], ['y'], ints('axes', [0, -1]), i('keepdims', op === 'ReduceMax' ? 0 : 1))],
      check: (g, target) => expect(only(g, op).input).toHaveLength(target >= 18 ? 2 : 1),
    }),
  ),
  // Split-13: split becomes an input; Split-18 wants num_outputs when there is none
  {
    name: 'Split-11 with split sizes', opset: 11, shape: [2, 3, 4], outputs: ['a', 'b'],
    nodes: [node('Split', ['x'], ['a', 'b'], i('axis', 1), ints('split', [1, 2]))],
    check: (g) => expect(attrNames(only(g, 'Split'))).toEqual(['axis']),
  },
  {
    name: 'Split-11 in equal parts', opset: 11, shape: [2, 3, 4], outputs: ['a', 'b'],
    nodes: [node('Split', ['x'], ['a', 'b'], i('axis', -1))],
    check: (g, target) => expect(attrNames(only(g, 'Split'))).toEqual(target >= 18 ? ['axis', 'num_outputs'] : ['axis']),
  },
  // Dropout-12: the ratio becomes an input, or the Dropout an Identity
  { name: 'Dropout-10, mask unused', opset: 10, shape: [2, 3], nodes: [node('Dropout', ['x'], ['y', 'mask'], f('ratio', 0.3))], check: (g) => expect(ops(g)).toEqual(['Identity']) },
  // Softmax family at 13: flatten-to-2-D semantics
  { name: 'Softmax-11 axis=1 of a 4-D tensor', opset: 11, shape: [2, 3, 4, 5], nodes: [node('Softmax', ['x'], ['y'], i('axis', 1))], check: (g) => expect(ops(g)).toEqual(['Shape', 'Flatten', 'Softmax', 'Reshape']) },
  { name: 'Softmax-9 default axis of a 3-D tensor', opset: 9, shape: [2, 3, 4], nodes: [node('Softmax', ['x'], ['y'])], check: (g) => expect(ops(g)).toEqual(['Shape', 'Flatten', 'Softmax', 'Reshape']) },
  {
    name: 'LogSoftmax-11 on the last axis (declared rank)', opset: 11, shape: [2, 3, 4], nodes: [node('LogSoftmax', ['x'], ['y'], i('axis', 2))],
    check: (g) => expect(only(g, 'LogSoftmax').attribute).toEqual([i('axis', -1)]),
  },
  { name: 'Hardmax-11 default axis of a 2-D tensor', opset: 11, shape: [3, 5], nodes: [node('Hardmax', ['x'], ['y'])], check: (g) => expect(only(g, 'Hardmax').attribute).toEqual([i('axis', -1)]) },
  {
    name: 'Softmax-11 on the last axis, rank by shape inference', opset: 11, shape: [2, 3, 4],
    nodes: [node('Relu', ['x'], ['r']), node('Softmax', ['r'], ['y'], i('axis', -1))],
    check: (g) => expect(ops(g)).toEqual(['Relu', 'Softmax']),
  },
  {
    name: 'Softmax-11 of unknown rank', opset: 11, shape: [2, 3, 4], declareShape: false,
    nodes: [node('Relu', ['x'], ['r']), node('Softmax', ['r'], ['y'], i('axis', 2))],
    check: (g) => expect(ops(g)).toEqual(['Relu', 'Shape', 'Flatten', 'Softmax', 'Reshape']),
  },
  // Upsample (gone at 10) → Resize
  { name: 'Upsample-7 nearest, scales attribute', opset: 7, shape: [1, 2, 3, 4], nodes: [node('Upsample', ['x'], ['y'], floats('scales', [1, 1, 2, 3]))], check: (g) => expect(ops(g)).toEqual(['Resize']) },
  { name: 'Upsample-7 linear', opset: 7, shape: [1, 2, 3, 4], nodes: [node('Upsample', ['x'], ['y'], floats('scales', [1, 1, 2, 2]), s('mode', 'linear'))] },
  { name: 'Upsample-9 nearest, scales input', opset: 9, shape: [1, 2, 3, 4], inits: [floatTensor('scales', [4], Float32Array.of(1, 1, 3, 2))], nodes: [node('Upsample', ['x', 'scales'], ['y'])] },
  { name: 'Upsample-9 linear', opset: 9, shape: [1, 2, 3, 4], inits: [floatTensor('scales', [4], Float32Array.of(1, 1, 2, 2.5))], nodes: [node('Upsample', ['x', 'scales'], ['y'], s('mode', 'linear'))] },
  // Resize-10 → 11: asymmetric coordinates, the nearest rounding of the direction
  { name: 'Resize-10 nearest up', opset: 10, shape: [1, 2, 3, 4], inits: [floatTensor('scales', [4], Float32Array.of(1, 1, 2, 1.5))], nodes: [node('Resize', ['x', 'scales'], ['y'])] },
  { name: 'Resize-10 nearest down', opset: 10, shape: [1, 2, 6, 7], inits: [floatTensor('scales', [4], Float32Array.of(1, 1, 0.5, 0.6))], nodes: [node('Resize', ['x', 'scales'], ['y'])] },
  { name: 'Resize-10 linear', opset: 10, shape: [1, 2, 3, 4], inits: [floatTensor('scales', [4], Float32Array.of(1, 1, 2, 1.5))], nodes: [node('Resize', ['x', 'scales'], ['y'], s('mode', 'linear'))] },
  // BatchNormalization: spatial (9), is_test (7), consumed_inputs (6), extra outputs (14)
  {
    name: 'BatchNormalization-7 spatial=1', opset: 7, shape: [2, 3, 4, 4],
    inits: bnParams(),
    nodes: [node('BatchNormalization', ['x', 'gamma', 'beta', 'mean', 'var'], ['y'], i('spatial', 1), f('epsilon', 1e-3))],
    check: (g) => expect(attrNames(only(g, 'BatchNormalization'))).toEqual(['epsilon']),
  },
  {
    name: 'BatchNormalization-6 is_test, consumed_inputs', opset: 6, shape: [2, 3, 4, 4],
    inits: bnParams(),
    nodes: [node('BatchNormalization', ['x', 'gamma', 'beta', 'mean', 'var'], ['y'], i('is_test', 1), i('spatial', 1), ints('consumed_inputs', [0, 0, 0, 1, 1]), f('epsilon', 1e-3))],
    // ONNX Runtime refuses this node ("Unrecognized attribute: consumed_inputs"); the reference is
    // computed in float64, so it agrees to 1e-6, not bit for bit
    expected: (x) => ({ y: batchNormRef(x, [2, 3, 4, 4], 1e-3) }),
    check: (g) => expect(attrNames(only(g, 'BatchNormalization'))).toEqual(['epsilon']),
  },
  {
    // five outputs select training mode before 14 (batch statistics): training_mode=1 from 14
    name: 'BatchNormalization-9 with statistics outputs (training mode)', opset: 9, shape: [2, 3, 4, 4],
    inits: bnParams(),
    nodes: [node('BatchNormalization', ['x', 'gamma', 'beta', 'mean', 'var'], ['y', 'rm', 'rv', 'sm', 'sv'])],
    check: (g, target) => {
      const bn = only(g, 'BatchNormalization');
      expect(bn.output).toHaveLength(target >= 14 ? 3 : 5);
      if (target >= 14) expect(bn.attribute).toContainEqual(i('training_mode', 1));
    },
  },
  // consumed_inputs on any opset-1 op
  {
    name: 'Relu-1 with consumed_inputs', opset: 5, shape: [2, 3],
    nodes: [node('Relu', ['x'], ['y'], ints('consumed_inputs', [1]))],
    // ONNX Runtime has no Relu kernel before opset 6
    expected: (x) => ({ y: x.map((v) => Math.max(0, v)) }),
    check: (g) => expect(attrNames(only(g, 'Relu'))).toEqual([]),
  },
  // binary ops before 7: broadcast=1 with axis
  {
    name: 'Add-6 broadcast along axis 1, constant B', opset: 6, shape: [2, 3, 4, 5],
    inits: [floatTensor('b', [3], Float32Array.of(1, -2, 3))],
    nodes: [node('Add', ['x', 'b'], ['y'], i('broadcast', 1), i('axis', 1))],
    // ONNX Runtime has no Add, Sub or Mul kernel before opset 7
    expected: (x) => ({ y: x.map((v, k) => Math.fround(v + [1, -2, 3][channelOf(k, [2, 3, 4, 5])]!)) }),
    check: (g) => expect(g.initializer!.find((t) => t.name === only(g, 'Add').input![1])!.dims).toEqual([3, 1, 1]),
  },
  {
    name: 'Sub-6 broadcast along axis 1, computed B', opset: 6, shape: [2, 3, 4, 5],
    nodes: [node('ReduceMax', ['x'], ['m'], ints('axes', [0, 2, 3]), i('keepdims', 0)), node('Sub', ['x', 'm'], ['y'], i('broadcast', 1), i('axis', 1))],
    expected: (x) => {
      const dims = [2, 3, 4, 5];
      const max = [-Infinity, -Infinity, -Infinity];
      x.forEach((v, k) => (max[channelOf(k, dims)] = Math.max(max[channelOf(k, dims)]!, v)));
      return { y: x.map((v, k) => Math.fround(v - max[channelOf(k, dims)]!)) };
    },
    check: (g) => expect(ops(g)).toEqual(['ReduceMax', 'Unsqueeze', 'Sub']),
  },
  {
    name: 'Mul-6 broadcast from the end', opset: 6, shape: [2, 3],
    inits: [floatTensor('b', [3], Float32Array.of(2, 0.5, -1))],
    nodes: [node('Mul', ['x', 'b'], ['y'], i('broadcast', 1))],
    expected: (x) => ({ y: x.map((v, k) => Math.fround(v * [2, 0.5, -1][k % 3]!)) }),
  },
  {
    name: 'Gemm-6 broadcast C', opset: 6, shape: [2, 4],
    inits: [floatTensor('w', [4, 3], Float32Array.from({ length: 12 }, (_, k) => (k % 5) - 2)), floatTensor('c', [3], Float32Array.of(0.5, 0, -0.5))],
    nodes: [node('Gemm', ['x', 'w', 'c'], ['y'], i('broadcast', 1))],
    // ONNX Runtime has no Gemm kernel before opset 7; the float64 sums agree to 1e-6
    expected: (x) => ({
      y: Float32Array.from({ length: 6 }, (_, k) => {
        const [r, col] = [Math.floor(k / 3), k % 3];
        let acc = 0;
        for (let j = 0; j < 4; j++) acc += x[r * 4 + j]! * (((j * 3 + col) % 5) - 2);
        return acc + [0.5, 0, -0.5][col]!;
      }),
    }),
  },
  // Slice-10, TopK-10, Reshape-5: attributes become inputs
  { name: 'Slice-9 attributes', opset: 9, shape: [2, 4, 5], nodes: [node('Slice', ['x'], ['y'], ints('starts', [1, 0]), ints('ends', [3, -1]), ints('axes', [1, 2]))], check: (g) => expect(only(g, 'Slice').input).toHaveLength(4) },
  { name: 'Slice-9 without axes', opset: 9, shape: [4, 5], nodes: [node('Slice', ['x'], ['y'], ints('starts', [1, 2]), ints('ends', [100, -1]))], check: (g) => expect(only(g, 'Slice').input).toHaveLength(3) },
  { name: 'TopK-9 k attribute', opset: 9, shape: [3, 6], nodes: [node('TopK', ['x'], ['y', 'idx'], i('k', 2))], check: (g) => expect(initValues(g, only(g, 'TopK').input![1]!)).toEqual([2]) },
  { name: 'Reshape-4 shape attribute', opset: 4, shape: [2, 3, 4], nodes: [node('Reshape', ['x'], ['y'], ints('shape', [0, -1]))], check: (g) => expect(only(g, 'Reshape').input).toHaveLength(2) },
  // Cast-6: `to` is a number, not a name
  {
    name: 'Cast-5 to named types', opset: 5, shape: [2, 3],
    nodes: [node('Cast', ['x'], ['t'], s('to', 'INT32')), node('Cast', ['t'], ['y'], s('to', 'FLOAT'))],
    // ONNX Runtime cannot type an opset-5 Cast (its `to` is a string); float → int32 truncates toward zero
    expected: (x) => ({ y: x.map(Math.trunc) }),
    check: (g) => expect(g.node!.map((n) => n.attribute![0]!.i)).toEqual([DataType.INT32, DataType.FLOAT]),
  },
  // renamed or replaced ops
  {
    name: 'Scatter-9 → ScatterElements', opset: 9, shape: [3, 4],
    inits: [int64Tensor('idx', [1, 2], [3, 0]), floatTensor('upd', [1, 2], Float32Array.of(10, 20))],
    nodes: [node('Scatter', ['x', 'idx', 'upd'], ['y'], i('axis', 1))],
    check: (g) => expect(ops(g)).toEqual(['ScatterElements']),
  },
  {
    name: 'ImageScaler-8 → Mul, Add', opset: 8, shape: [1, 3, 2, 2],
    nodes: [node('ImageScaler', ['x'], ['y'], f('scale', 0.5), floats('bias', [1, 2, 3]))],
    check: (g) => expect(ops(g)).toEqual(['Mul', 'Add']),
  },
  {
    name: 'MeanVarianceNormalization-8 across channels', opset: 8, shape: [2, 3, 2, 2],
    nodes: [node('MeanVarianceNormalization', ['x'], ['y'], i('across_channels', 1))],
    check: (g) => expect(only(g, 'MeanVarianceNormalization').attribute).toEqual([ints('axes', [0, 1, 2, 3])]),
  },
  {
    name: 'GridSample-16 bilinear', opset: 16, shape: [1, 2, 3, 4], targets: [21],
    inits: [floatTensor('grid', [1, 2, 3, 2], Float32Array.of(-1, -1, 0.3, -0.2, 0.9, 1, 0, 0, -0.7, 0.4, 0.25, 0.75))],
    nodes: [node('GridSample', ['x', 'grid'], ['y'], i('align_corners', 0))],
    check: (g) => expect(only(g, 'GridSample').attribute).toContainEqual(s('mode', 'linear')),
  },
  {
    name: 'Concat-3 without axis', opset: 3, shape: [2, 2, 3],
    nodes: [node('Concat', ['x', 'x'], ['y'])],
    // ONNX Runtime has no Concat kernel before opset 4; opset 1 concatenated on axis 1 by default
    expected: (x) => ({ y: Float32Array.from({ length: 24 }, (_, k) => x[Math.floor(k / 12) * 6 + (k % 6)]!) }),
    check: (g) => expect(only(g, 'Concat').attribute).toEqual([i('axis', 1)]),
  },
];

function bnParams(): TensorProto[] {
  return [
    floatTensor('gamma', [3], Float32Array.of(1.5, 0.5, -1)),
    floatTensor('beta', [3], Float32Array.of(0.1, 0, -0.2)),
    floatTensor('mean', [3], Float32Array.of(0.2, -0.1, 0)),
    floatTensor('var', [3], Float32Array.of(1, 0.25, 2)),
  ];
}

/** BatchNormalization as ONNX defines it, in float64 then rounded: within 1e-6 of ONNX Runtime's float32. */
function batchNormRef(x: Float32Array, dims: number[], eps: number): Float32Array {
  const [gamma, beta, mean, variance] = [[1.5, 0.5, -1], [0.1, 0, -0.2], [0.2, -0.1, 0], [1, 0.25, 2]].map((a) => a.map(Math.fround));
  return x.map((v, k) => {
    const c = channelOf(k, dims);
    return ((v - mean![c]!) / Math.sqrt(variance![c]! + Math.fround(eps))) * gamma![c]! + beta![c]!;
  });
}

describe('upgradeOpset: each rewrite computes the old op exactly, checked in ONNX Runtime', () => {
  for (const c of CASES) {
    for (const target of c.targets ?? [13, 21]) {
      it(`${c.name} → ${target}`, async () => {
        const model = buildModel(c);
        const x = randn(c.shape.reduce((a, b) => a * b, 1), rng(c.name.length * 31 + target), 2);
        const before = c.expected ? c.expected(x) : await runAll(model, x, c.shape);
        const upgraded = upgradeOpset(model, target);
        expect(defaultOpsetVersion(upgraded)).toBe(target);
        expect(upgraded.irVersion).toBeGreaterThanOrEqual(minIrVersion(target));
        c.check?.(upgraded.graph!, target);
        const after = await runAll(upgraded, x, c.shape);
        for (const name of c.outputs ?? ['y']) expectSame(after[name]!, before[name]!);
      });
    }
  }
});

describe('upgradeOpset: subgraphs, unchanged ops, errors', () => {
  it('rewrites the branches of an If (they use the model opset)', async () => {
    const branch = (name: string, lo: number): GraphProto => ({
      name,
      node: [node('Clip', ['x'], [`${name}_y`], f('min', lo), f('max', lo + 1))],
      output: [{ name: `${name}_y`, type: { tensorType: { elemType: DataType.FLOAT } } }],
    });
    const c: Case = {
      name: 'If', opset: 10, shape: [2, 3],
      inits: [{ name: 'cond', dataType: DataType.BOOL, dims: [], rawData: Uint8Array.of(1) }],
      nodes: [{ name: 'if', opType: 'If', input: ['cond'], output: ['y'], attribute: [{ name: 'then_branch', type: AttributeType.GRAPH, g: branch('then', -0.5) }, { name: 'else_branch', type: AttributeType.GRAPH, g: branch('else', 0) }] }],
    };
    const model = buildModel(c);
    const x = randn(6, rng(3), 2);
    const upgraded = upgradeOpset(model, 13);
    const then = upgraded.graph!.node![0]!.attribute![0]!.g!;
    expect(then.node![0]!.input).toHaveLength(3);
    expect(then.initializer).toHaveLength(2);
    expectSame((await runAll(upgraded, x, c.shape)).y!, (await runAll(model, x, c.shape)).y!);
  });

  it('leaves unchanged ops, other domains and new-form nodes as they are', () => {
    const model = buildModel({
      name: 'unchanged', opset: 9, shape: [1, 2, 4, 4],
      inits: [floatTensor('w', [2, 2, 1, 1], Float32Array.of(1, 0, 0, 1)), floatTensor('lo', [], Float32Array.of(0))],
      nodes: [
        node('Conv', ['x', 'w'], ['c'], ints('kernel_shape', [1, 1])),
        node('Relu', ['c'], ['r']),
        // already in the opset-11 form: not touched
        node('Clip', ['r', 'lo'], ['k']),
        { ...node('FusedThing', ['k'], ['y'], ints('axes', [1])), domain: 'com.example' },
      ],
    });
    const upgraded = upgradeOpset(model, 13);
    expect(upgraded.graph!.node).toEqual(model.graph!.node);
    expect(upgraded.graph!.initializer).toEqual(model.graph!.initializer);
  });

  it('returns the model as it is at its own opset, and refuses to go down', () => {
    const model = buildModel({ name: 'same', opset: 13, shape: [2], nodes: [node('Relu', ['x'], ['y'])] });
    expect(upgradeOpset(model, 13)).toBe(model);
    expect(() => upgradeOpset(model, 11)).toThrow(/opset 13.*target 11/);
  });

  const failing: [string, NodeProto[], number, RegExp][] = [
    ['a Dropout-7 whose mask is read', [node('Dropout', ['x'], ['d', 'mask']), node('Add', ['d', 'mask'], ['y'])], 7, /7 → 13: Dropout .*mask/],
    ['a Dropout-10 whose mask is read', [node('Dropout', ['x'], ['y', 'mask'], f('ratio', 0.3)), node('Cast', ['mask'], ['m'], i('to', DataType.FLOAT))], 10, /10 → 13: Dropout .*mask/],
    ['BatchNormalization with spatial=0', [node('BatchNormalization', ['x', 'g', 'b', 'm', 'v'], ['y'], i('spatial', 0))], 7, /7 → 13: BatchNormalization .*spatial=0/],
    ['Scan-8', [node('Scan', ['', 'x'], ['y'])], 8, /8 → 13: Scan/],
    ['the experimental Crop', [node('Crop', ['x'], ['y'], ints('border', [1, 1, 1, 1]))], 9, /9 → 13: Crop .*removed/],
    ['Resize-10 nearest with computed scales', [node('Shape', ['x'], ['sh']), node('Cast', ['sh'], ['scales'], i('to', DataType.FLOAT)), node('Resize', ['x', 'scales'], ['y'])], 10, /10 → 13: Resize .*computed scales/],
  ];
  it.each(failing)('throws, naming the op and both opsets, for %s', (_, nodes, opset, message) => {
    const model = buildModel({ name: 'fails', opset, shape: [1, 3, 4, 4], nodes });
    expect(() => upgradeOpset(model, 13)).toThrow(message);
  });
});

describe('exportQdq on a model from an older exporter', () => {
  /**
   * What issue 18 measured: an opset-9 export with Constant-node weights, ReLU6 as Clip with
   * attributes and a Softmax head. Canonicalisation finds its layers, and the QDQ export (which
   * raises the opset to 13, or 21 for 4-bit weights) loads and runs in ONNX Runtime.
   */
  function oldExport(): ModelProto {
    const rand = rng(18);
    const constant = (name: string, t: TensorProto): NodeProto => ({ name: `${name}_const`, opType: 'Constant', input: [], output: [name], attribute: [{ name: 'value', type: AttributeType.TENSOR, t }] });
    return buildModel({
      name: 'opset9', opset: 9, shape: [2, 3, 8, 8],
      nodes: [
        constant('w1', floatTensor('w1', [8, 3, 3, 3], randn(216, rand, 0.3))),
        constant('b1', floatTensor('b1', [8], randn(8, rand, 0.1))),
        node('Conv', ['x', 'w1', 'b1'], ['c1'], ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1])),
        node('Clip', ['c1'], ['r1'], f('min', 0), f('max', 6)),
        constant('w2', floatTensor('w2', [8, 8, 1, 1], randn(64, rand, 0.3))),
        node('Conv', ['r1', 'w2'], ['c2'], ints('kernel_shape', [1, 1])),
        node('Clip', ['c2'], ['r2'], f('min', 0), f('max', 6)),
        node('GlobalAveragePool', ['r2'], ['p']),
        node('Flatten', ['p'], ['flat']),
        constant('fc', floatTensor('fc', [5, 8], randn(40, rand, 0.3))),
        // C is required before opset 11
        constant('fc_b', floatTensor('fc_b', [5], randn(5, rand, 0.1))),
        node('Gemm', ['flat', 'fc', 'fc_b'], ['logits'], i('transB', 1)),
        node('Softmax', ['logits'], ['y']),
      ],
    });
  }

  it.each([[8, 13], [4, 21]] as const)('W%i: finds the layers, exports at opset %i, and ONNX Runtime runs it close to the float model', async (bits, opset) => {
    const model = oldExport();
    const canonical = canonicalize(model).model;
    const layers = findQuantLayers(canonical);
    expect(layers.map((l) => l.kind)).toEqual(['conv', 'conv', 'gemm']);
    const exported = exportQdq({ model: canonical, weights: layers.map((l) => roundToNearest(l, bits)), activations: new Map() });
    expect(defaultOpsetVersion(exported)).toBe(opset);
    expect(exported.graph!.node!.filter((n) => n.opType === 'Clip').every((n) => !n.attribute?.length && n.input!.length === 3)).toBe(true);
    const x = randn(2 * 3 * 64, rng(1));
    const [a, b] = [(await runAll(model, x, [2, 3, 8, 8])).y!, (await runAll(exported, x, [2, 3, 8, 8])).y!];
    expect(b.every(Number.isFinite)).toBe(true);
    // probabilities of the quantized model stay near the float model's
    for (let k = 0; k < a.length; k++) expect(Math.abs(b[k]! - a[k]!)).toBeLessThan(bits === 8 ? 0.02 : 0.2);
  });
});
