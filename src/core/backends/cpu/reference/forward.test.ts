import { describe, expect, it } from 'vitest';
import { intAttr, intsAttr } from '../../../graph/attributes';
import { DataType, type NodeProto, type TensorProto } from '../../../onnx/schema';
import { floatTensor, int8Tensor, packSubByte } from '../../../onnx/tensor-data';
import { randn, rng } from '../../../random';
import { size, tensor, type Tensor } from '../../../tensor/tensor';
import { conv2dForward } from './conv2d';
import {
  addForward,
  clipForward,
  hardSigmoidForward,
  hardSwishForward,
  leakyReluForward,
  mulForward,
  reluForward,
  sigmoidForward,
} from './elementwise';
import { fakeQuantForward } from './fake-quant';
import { gemmForward, matmulForward } from './gemm';
import { averagePoolForward, globalAveragePoolForward, maxPoolForward } from './pooling';
import { CONV_CONFIGS, POOL_CONFIGS } from './testing/configs';
import { floatAttr, runOnnx, type OracleGraph } from './testing/onnx-oracle';

/**
 * Every forward kernel against ONNX Runtime on a one-node graph: the model the studio exports is
 * what ORT runs, so ORT's semantics (pads order, count_include_pad, rounding) are the ones to match.
 */

const rand = rng(20240611);
const random = (shape: readonly number[], scale = 1): Tensor => tensor(shape, randn(size(shape), rand, scale));

interface ForwardCase {
  name: string;
  x: Tensor;
  graph: OracleGraph;
  ours: () => Tensor;
}

const node = (opType: string, input: string[], attribute: NodeProto['attribute'] = []): NodeProto => ({ name: opType, opType, input, output: ['y'], attribute });
const init = (name: string, t: Tensor): TensorProto => floatTensor(name, t.shape, t.data);
const scalar = (name: string, v: number): TensorProto => floatTensor(name, [], Float32Array.of(v));

function convCases(): ForwardCase[] {
  return CONV_CONFIGS.map((c) => {
    const x = random(c.x);
    const w = random(c.w, 0.5);
    const b = c.bias ? random([c.w[0]], 0.5) : null;
    const [sh, sw] = c.attrs.strides;
    return {
      name: `Conv ${c.name}`,
      x,
      graph: {
        nodes: [
          node('Conv', b ? ['x', 'w', 'b'] : ['x', 'w'], [
            intsAttr('kernel_shape', [c.w[2], c.w[3]]),
            intsAttr('strides', [sh, sw]),
            intsAttr('pads', [...c.attrs.pads]),
            intsAttr('dilations', [...c.attrs.dilations]),
            intAttr('group', c.attrs.group),
          ]),
        ],
        initializers: b ? [init('w', w), init('b', b)] : [init('w', w)],
      },
      ours: () => conv2dForward(x, w, b, c.attrs),
    };
  });
}

function poolCases(): ForwardCase[] {
  return POOL_CONFIGS.flatMap((c) => {
    const x = random(c.x);
    const attrs = [intsAttr('kernel_shape', [...c.attrs.kernel]), intsAttr('strides', [...c.attrs.strides]), intsAttr('pads', [...c.attrs.pads])];
    return [
      {
        name: `AveragePool ${c.name}`,
        x,
        graph: { nodes: [node('AveragePool', ['x'], [...attrs, intAttr('count_include_pad', c.attrs.countIncludePad ? 1 : 0)])] },
        ours: () => averagePoolForward(x, c.attrs),
      },
      ...(c.attrs.countIncludePad ? [] : [{ name: `MaxPool ${c.name}`, x, graph: { nodes: [node('MaxPool', ['x'], attrs)] }, ours: () => maxPoolForward(x, c.attrs) }]),
    ];
  });
}

function denseCases(): ForwardCase[] {
  const x = random([3, 7]);
  const w = random([5, 7], 0.5);
  const b = random([5], 0.5);
  const x3 = random([2, 3, 6]);
  const wm = random([6, 4], 0.5);
  return [
    {
      name: 'Gemm transB = 1',
      x,
      graph: { nodes: [node('Gemm', ['x', 'w', 'b'], [intAttr('transB', 1)])], initializers: [init('w', w), init('b', b)] },
      ours: () => gemmForward(x, w, b),
    },
    {
      name: 'Gemm without bias',
      x,
      graph: { nodes: [node('Gemm', ['x', 'w'], [intAttr('transB', 1)])], initializers: [init('w', w)] },
      ours: () => gemmForward(x, w, null),
    },
    { name: 'MatMul 3-D × 2-D', x: x3, graph: { nodes: [node('MatMul', ['x', 'w'])], initializers: [init('w', wm)] }, ours: () => matmulForward(x3, wm) },
  ];
}

function elementwiseCases(): ForwardCase[] {
  const shape = [2, 4, 5, 5];
  const x = random(shape, 4);
  const other = random(shape);
  const gate = random([2, 4, 1, 1]);
  const unary = (name: string, opType: string, ours: (x: Tensor) => Tensor, attribute: NodeProto['attribute'] = [], opset = 13): ForwardCase => ({
    name,
    x,
    graph: { nodes: [node(opType, ['x'], attribute)], opset },
    ours: () => ours(x),
  });
  return [
    unary('Relu', 'Relu', reluForward),
    {
      name: 'Clip [0, 6] (ReLU6)',
      x,
      graph: { nodes: [node('Clip', ['x', 'lo', 'hi'])], initializers: [scalar('lo', 0), scalar('hi', 6)] },
      ours: () => clipForward(x, 0, 6),
    },
    {
      name: 'Clip [-1, 2]',
      x,
      graph: { nodes: [node('Clip', ['x', 'lo', 'hi'])], initializers: [scalar('lo', -1), scalar('hi', 2)] },
      ours: () => clipForward(x, -1, 2),
    },
    unary('LeakyRelu α = 0.1', 'LeakyRelu', (t) => leakyReluForward(t, 0.1), [floatAttr('alpha', 0.1)]),
    unary('Sigmoid', 'Sigmoid', sigmoidForward),
    unary('HardSigmoid, ONNX defaults', 'HardSigmoid', (t) => hardSigmoidForward(t, 0.2, 0.5)),
    unary('HardSigmoid α = 1/6', 'HardSigmoid', (t) => hardSigmoidForward(t, 1 / 6, 0.5), [floatAttr('alpha', 1 / 6), floatAttr('beta', 0.5)]),
    unary('HardSwish', 'HardSwish', hardSwishForward, [], 14),
    { name: 'Add', x, graph: { nodes: [node('Add', ['x', 'o'])], initializers: [init('o', other)] }, ours: () => addForward(x, other) },
    { name: 'Mul, same shape', x, graph: { nodes: [node('Mul', ['x', 'o'])], initializers: [init('o', other)] }, ours: () => mulForward(x, other) },
    { name: 'Mul, [N, C, 1, 1] gate', x, graph: { nodes: [node('Mul', ['x', 'g'])], initializers: [init('g', gate)] }, ours: () => mulForward(x, gate) },
    { name: 'GlobalAveragePool', x, graph: { nodes: [node('GlobalAveragePool', ['x'])] }, ours: () => globalAveragePoolForward(x) },
  ];
}

/** QuantizeLinear → DequantizeLinear, the pair the exporter writes, against fakeQuant. */
function qdqCase(name: string, x: Tensor, scale: number[], zero: TensorProto, zeros: number[], qmin: number, qmax: number, opset = 13): ForwardCase {
  const perChannel = scale.length > 1;
  const axis = perChannel ? [intAttr('axis', 0)] : [];
  const s = floatTensor('s', perChannel ? [scale.length] : [], Float32Array.from(scale));
  return {
    name,
    x,
    graph: {
      nodes: [
        { name: 'q', opType: 'QuantizeLinear', input: ['x', 's', 'z'], output: ['xq'], attribute: axis },
        { name: 'dq', opType: 'DequantizeLinear', input: ['xq', 's', 'z'], output: ['y'], attribute: axis },
      ],
      initializers: [s, zero],
      opset,
    },
    ours: () => fakeQuantForward(x, { scale: Float32Array.from(scale), zero: zeros, qmin, qmax }),
  };
}

function quantCases(): ForwardCase[] {
  // exact ties k + 0.5 on a power-of-two step: ORT rounds them half to even, and so must we
  const ties = tensor([1, 1, 4, 8], Float32Array.from({ length: 32 }, (_, i) => 0.25 * (i - 16 + 0.5)));
  const w = random([4, 3, 3, 3]);
  return [
    qdqCase('QDQ uint8 per tensor, clipping', random([2, 3, 6, 6], 4), [0.02], int8Tensor('z', [], Uint8Array.of(128), false), [128], 0, 255),
    qdqCase('QDQ uint8, ties', ties, [0.25], int8Tensor('z', [], Uint8Array.of(3), false), [3], 0, 255),
    qdqCase('QDQ int8 per channel (axis 0)', w, [0.01, 0.02, 0.015, 0.03], int8Tensor('z', [4], Int8Array.of(0, 3, -5, 10), true), [0, 3, -5, 10], -128, 127),
    qdqCase('QDQ uint4 per tensor (opset 21)', random([2, 3, 4, 4]), [0.3], { name: 'z', dims: [], dataType: DataType.UINT4, rawData: packSubByte([8], 4) }, [8], 0, 15, 21),
    qdqCase('QDQ int4 per channel (opset 21)', w, [0.2, 0.25, 0.3, 0.15], { name: 'z', dims: [4], dataType: DataType.INT4, rawData: packSubByte([0, 1, -2, 0], 4) }, [0, 1, -2, 0], -8, 7, 21),
  ];
}

const CASES: ForwardCase[] = [...convCases(), ...denseCases(), ...elementwiseCases(), ...poolCases(), ...quantCases()];

describe('reference forward kernels match ONNX Runtime', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const expected = await runOnnx(c.graph, c.x);
    const actual = c.ours();
    expect(actual.shape).toEqual(expected.shape);
    let diff = 0;
    let scale = 1;
    for (let i = 0; i < expected.data.length; i++) {
      diff = Math.max(diff, Math.abs(actual.data[i]! - expected.data[i]!));
      scale = Math.max(scale, Math.abs(expected.data[i]!));
    }
    expect(diff / scale).toBeLessThan(1e-5);
  });
});
