import { describe, expect, it } from 'vitest';
import { GemmConv } from './conv-gemm';
import { createGemm } from './wasm/gemm';
import { conv2dAttrs, conv2dBackward, conv2dForward, type Conv2dAttrs, type Nd } from './reference';
import { randn, rng } from '../../random';

const cases: [string, number[], number[], Partial<Conv2dAttrs>][] = [
  ['3×3 pad 1', [3, 4, 9, 9], [6, 4, 3, 3], { pads: [1, 1, 1, 1] }],
  ['stride 2, asymmetric pads', [2, 3, 10, 7], [5, 3, 3, 2], { strides: [2, 1], pads: [1, 0, 0, 1] }],
  ['dilation 2', [2, 2, 11, 11], [3, 2, 3, 3], { dilations: [2, 2], pads: [2, 2, 2, 2] }],
  ['1×1 stride 2', [4, 8, 6, 6], [16, 8, 1, 1], { strides: [2, 2] }],
  ['depthwise (reference fallback)', [2, 4, 5, 5], [4, 1, 3, 3], { group: 4, pads: [1, 1, 1, 1] }],
];

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
  }
  return err / scale;
}

describe('im2col + SGEMM convolution agrees with the reference kernels', async () => {
  const gemm = await createGemm();
  for (const [name, xs, ws, a] of cases) {
    it(name, () => {
      const rand = rng(xs.reduce((p, q) => p * 31 + q, 7));
      const attrs = conv2dAttrs(a);
      const x: Nd = { shape: xs, data: randn(xs.reduce((p, q) => p * q, 1), rand) };
      const w: Nd = { shape: ws, data: randn(ws.reduce((p, q) => p * q, 1), rand, 0.3) };
      const b: Nd = { shape: [ws[0]!], data: randn(ws[0]!, rand) };
      const conv = new GemmConv(gemm, attrs, b);
      const y = conv.forward(x, w);
      const ref = conv2dForward(x, w, b, attrs);
      expect(y.shape).toEqual(ref.shape);
      expect(maxRelErr(y.data, ref.data)).toBeLessThan(1e-5);
      const dy: Nd = { shape: ref.shape, data: randn(ref.data.length, rand) };
      expect(maxRelErr(conv.weightGrad(x, w, dy).data, conv2dBackward(x, w, dy, attrs).dw.data)).toBeLessThan(1e-5);
    });
  }
});
