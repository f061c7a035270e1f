import { describe, expect, it } from 'vitest';
import { AttributeType, type Attribute, type NodeProto } from '../onnx/schema';
import { randn, rng } from '../random';
import type { Nd } from '../backends/cpu/reference';
import { runOnnx } from '../backends/cpu/reference/testing/onnx-oracle';
import { floatTensor, int64Tensor } from '../onnx/tensor-data';
import { kernelFor } from './kernels';
import { intAttr, intsAttr } from '../graph/attributes';
import { referenceConv } from './conv-engine';

const ints = intsAttr;
const int = intAttr;
const float = (name: string, v: number): Attribute => ({ name, type: AttributeType.FLOAT, f: v });

interface Case {
  readonly label: string;
  readonly op: string;
  readonly attrs?: Attribute[];
  readonly shape: number[];
  /** Constant inputs after x, in node order (null: an absent optional input). */
  readonly consts?: (Nd | null)[];
  readonly opset?: number;
}

const nd = (shape: number[], seed: number, scale = 1): Nd => ({ shape, data: randn(shape.reduce((a, b) => a * b, 1), rng(seed), scale) });
const i64 = (v: number[]): Nd => ({ shape: [v.length], data: Float32Array.from(v) });

const CASES: Case[] = [
  { label: 'ReduceMean over H, W (keepdims)', op: 'ReduceMean', attrs: [ints('axes', [2, 3])], shape: [2, 3, 4, 5] },
  { label: 'ReduceMean, keepdims = 0', op: 'ReduceMean', attrs: [ints('axes', [-1]), int('keepdims', 0)], shape: [2, 3, 4] },
  { label: 'Transpose', op: 'Transpose', attrs: [ints('perm', [0, 2, 3, 1])], shape: [2, 3, 4, 5] },
  { label: 'Softmax (last axis)', op: 'Softmax', attrs: [int('axis', -1)], shape: [3, 7] },
  { label: 'Pad (constant, asymmetric)', op: 'Pad', shape: [1, 2, 3, 4], consts: [i64([0, 0, 1, 2, 0, 0, 2, 1])] },
  { label: 'Mul by a squeeze-excitation gate', op: 'Mul', shape: [2, 3, 4, 4], consts: [nd([2, 3, 1, 1], 5)] },
  { label: 'Div by a per-channel constant', op: 'Div', shape: [2, 3, 4, 4], consts: [{ shape: [1, 3, 1, 1], data: Float32Array.of(2, -3, 0.5) }] },
  { label: 'Sub with a broadcast row', op: 'Sub', shape: [2, 3, 4, 4], consts: [nd([4], 6)] },
  { label: 'BatchNormalization (unfolded)', op: 'BatchNormalization', shape: [2, 3, 4, 4], consts: [nd([3], 1), nd([3], 2), nd([3], 3), { shape: [3], data: Float32Array.of(0.5, 1, 2) }] },
  { label: 'MaxPool 3×3 s2, ceil mode', op: 'MaxPool', attrs: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), int('ceil_mode', 1)], shape: [1, 2, 8, 8] },
  { label: 'AveragePool 3×3 s2 p1, count_include_pad', op: 'AveragePool', attrs: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1]), int('count_include_pad', 1)], shape: [1, 2, 7, 7] },
  { label: 'HardSigmoid', op: 'HardSigmoid', attrs: [float('alpha', 1 / 6), float('beta', 0.5)], shape: [2, 16] },
  { label: 'HardSwish', op: 'HardSwish', shape: [2, 16], opset: 14 },
  { label: 'Clip as ReLU6 (bounds as inputs)', op: 'Clip', shape: [2, 16], consts: [{ shape: [], data: Float32Array.of(0) }, { shape: [], data: Float32Array.of(6) }] },
  { label: 'LeakyRelu', op: 'LeakyRelu', attrs: [float('alpha', 0.1)], shape: [2, 16] },
  { label: 'Conv with auto_pad SAME_UPPER, stride 2', op: 'Conv', attrs: [ints('strides', [2, 2]), { name: 'auto_pad', type: AttributeType.STRING, s: new TextEncoder().encode('SAME_UPPER') }], shape: [1, 2, 7, 7], consts: [nd([3, 2, 3, 3], 9, 0.3)] },
];

function nodeOf(c: Case): NodeProto {
  return { name: c.label, opType: c.op, input: ['x', ...(c.consts ?? []).map((v, i) => (v ? `c${i}` : ''))], output: ['y'], attribute: c.attrs ?? [] };
}

describe('engine kernels', () => {
  for (const c of CASES) {
    it(`${c.label}: forward matches ONNX Runtime, backward matches central differences`, async () => {
      const node = nodeOf(c);
      const consts = c.consts ?? [];
      const kernel = kernelFor(node, { constant: (i) => (i === 0 ? null : (consts[i - 1] ?? null)), conv: referenceConv });
      // keep inputs away from kinks (ReLU-like ops at 0, pooling ties) where differences are ill-defined
      const x = nd(c.shape, 3);
      for (let i = 0; i < x.data.length; i++) if (Math.abs(x.data[i]!) < 0.05) x.data[i] = 0.05 * Math.sign(x.data[i]! || 1) + x.data[i]!;
      const inputs = [x, ...consts];
      const y = kernel.forward(inputs);
      const initializers = consts.flatMap((v, i) => (v ? [c.op === 'Pad' && i === 0 ? int64Tensor(`c${i}`, v.shape, Array.from(v.data)) : floatTensor(`c${i}`, v.shape, v.data)] : []));
      const want = await runOnnx({ nodes: [node], initializers, opset: c.opset ?? 13 }, x);
      expect(y.shape).toEqual(want.shape);
      let err = 0;
      for (let i = 0; i < y.data.length; i++) err = Math.max(err, Math.abs(y.data[i]! - want.data[i]!));
      expect(err).toBeLessThan(1e-5 * Math.max(1, ...Array.from(want.data, Math.abs)));

      const r = randn(y.data.length, rng(4));
      const dx = kernel.backward(inputs, y, { shape: y.shape, data: Float32Array.from(r) }, inputs.map((_, i) => i === 0))[0]!;
      const loss = (): number => {
        const out = kernel.forward(inputs).data;
        let acc = 0;
        for (let i = 0; i < out.length; i++) acc += out[i]! * r[i]!;
        return acc;
      };
      const eps = 1e-3;
      let worst = 0;
      let scale = 1e-2;
      for (let j = 0; j < x.data.length; j += Math.max(1, Math.floor(x.data.length / 24))) {
        const v = x.data[j]!;
        x.data[j] = v + eps;
        const up = loss();
        x.data[j] = v - eps;
        const down = loss();
        x.data[j] = v;
        const fd = (up - down) / (2 * eps);
        worst = Math.max(worst, Math.abs(fd - dx.data[j]!));
        scale = Math.max(scale, Math.abs(fd));
      }
      expect(worst / scale).toBeLessThan(2e-2);
    });
  }
});
