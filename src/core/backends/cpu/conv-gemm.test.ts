import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GemmConv } from './conv-gemm';
import { createGemm, type Gemm } from './wasm/gemm';
import { firstBitDifference } from './wasm/testing/gemm-cases';
import { clipBackward, conv2dAttrs, conv2dBackward, conv2dForward, reluForward, clipForward, type Conv2dAttrs, type Nd } from './reference';
import { randn, rng } from '../../random';

/*
 * GemmConv (im2col/col2im + SGEMM per chunk, grouped GEMMs, the direct depthwise kernel) against
 * the float64-accumulating reference kernels, on fixed and seeded random shapes, forward, weight
 * gradient and input gradient; and thread counts against each other, which must agree bit for bit.
 */

type Case = [string, number[], number[], Partial<Conv2dAttrs>];

const fixed: Case[] = [
  ['3×3 pad 1', [3, 4, 9, 9], [6, 4, 3, 3], { pads: [1, 1, 1, 1] }],
  ['stride 2, asymmetric pads', [2, 3, 10, 7], [5, 3, 3, 2], { strides: [2, 1], pads: [1, 0, 0, 1] }],
  ['dilation 2', [2, 2, 11, 11], [3, 2, 3, 3], { dilations: [2, 2], pads: [2, 2, 2, 2] }],
  ['1×1 stride 2', [4, 8, 6, 6], [16, 8, 1, 1], { strides: [2, 2] }],
  ['1×1 (pointwise: the image is the column matrix)', [3, 8, 9, 7], [12, 8, 1, 1], {}],
  ['1×1 with padding', [2, 5, 4, 6], [3, 5, 1, 1], { pads: [1, 0, 2, 1] }],
  ['grouped, 2 groups', [2, 6, 9, 8], [4, 3, 3, 3], { group: 2, pads: [1, 1, 1, 1] }],
  ['grouped, 3 groups of 1×1', [2, 9, 5, 5], [6, 3, 1, 1], { group: 3 }],
  ['depthwise 3×3', [2, 4, 5, 5], [4, 1, 3, 3], { group: 4, pads: [1, 1, 1, 1] }],
  ['depthwise 3×3 stride 2, asymmetric pads', [2, 6, 9, 8], [6, 1, 3, 3], { group: 6, pads: [1, 0, 2, 1], strides: [2, 2] }],
  ['depthwise 5×3, dilation (1, 2)', [2, 6, 9, 8], [6, 1, 5, 3], { group: 6, pads: [2, 1, 2, 1], dilations: [1, 2] }],
  ['depthwise 3×3 stride 3, pads larger than the kernel reach', [1, 3, 11, 10], [3, 1, 3, 3], { group: 3, strides: [3, 3], pads: [3, 2, 1, 4] }],
  ['depthwise with channel multiplier 2 (grouped GEMM)', [2, 3, 7, 7], [6, 1, 3, 3], { group: 3, pads: [1, 1, 1, 1] }],
  ['larger: 16→32 at 40×40, batch 3 (several chunks per image)', [3, 16, 40, 40], [32, 16, 3, 3], { pads: [1, 1, 1, 1] }],
  ['larger: 130 → 140 at 5×5 (more than MC rows, runs of images)', [4, 130, 5, 5], [140, 130, 3, 3], { pads: [1, 1, 1, 1] }],
];

/** Seeded random convolutions: strides, asymmetric pads, dilations, groups, depthwise. */
function randomCases(n: number, seed: number): Case[] {
  const r = rng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const out: Case[] = [];
  while (out.length < n) {
    const kind = int(0, 2); // 0 dense, 1 grouped, 2 depthwise
    const group = kind === 0 ? 1 : kind === 1 ? int(2, 3) : int(1, 6);
    const C = kind === 2 ? group : group * int(1, 4);
    const K = kind === 2 ? C : group * int(1, 4);
    const kh = int(1, 4), kw = int(1, 4);
    const attrs: Partial<Conv2dAttrs> = {
      strides: [int(1, 3), int(1, 3)],
      dilations: [int(1, 2), int(1, 2)],
      pads: [int(0, 2), int(0, 2), int(0, 2), int(0, 2)],
      group,
    };
    const shape = [int(1, 3), C, int(3, 14), int(3, 14)];
    const a = conv2dAttrs(attrs);
    const ho = Math.floor((shape[2]! + a.pads[0] + a.pads[2] - (kh - 1) * a.dilations[0] - 1) / a.strides[0]) + 1;
    const wo = Math.floor((shape[3]! + a.pads[1] + a.pads[3] - (kw - 1) * a.dilations[1] - 1) / a.strides[1]) + 1;
    if (ho < 1 || wo < 1) continue;
    out.push([`random ${out.length}: x [${shape.join(',')}] w [${[K, C / group, kh, kw].join(',')}] ${JSON.stringify(attrs)}`, shape, [K, C / group, kh, kw], attrs]);
  }
  return out;
}

/** Largest |a − b| over the largest |b|: the error relative to the tensor's scale. */
function maxRelErr(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
  }
  return err / scale;
}

function problem([, xs, ws, a]: Case) {
  const rand = rng(xs.reduce((p, q) => p * 31 + q, 7) + ws.reduce((p, q) => p * 17 + q, 3));
  const attrs = conv2dAttrs(a);
  const x: Nd = { shape: xs, data: randn(xs.reduce((p, q) => p * q, 1), rand) };
  const w: Nd = { shape: ws, data: randn(ws.reduce((p, q) => p * q, 1), rand, 0.3) };
  const b: Nd = { shape: [ws[0]!], data: randn(ws[0]!, rand) };
  const ref = conv2dForward(x, w, b, attrs);
  const dy: Nd = { shape: ref.shape, data: randn(ref.data.length, rand) };
  return { attrs, x, w, b, dy, ref };
}

const TOL = 2e-5;

/** Gemm set-ups: default threads and chunking, and tiny chunks so small shapes cross chunk edges. */
const setups = [
  { name: 'default threads and chunks', options: {} },
  { name: '1 thread, 40-column chunks', options: { threads: 1, convChunkColumns: 40 } },
  { name: '3 threads, 24-column chunks', options: { threads: 3, convChunkColumns: 24, parallelMinFlops: 0 } },
  { name: 'plain SIMD build, 2 threads', options: { variant: 'simd', threads: 2, parallelMinFlops: 0 } },
] as const;

describe.each(setups)('GemmConv agrees with the reference kernels ($name)', ({ options }) => {
  let gemm: Gemm;
  beforeAll(async () => {
    gemm = await createGemm(options);
  });
  afterAll(() => gemm.dispose());

  for (const c of [...fixed, ...randomCases(24, 2024)]) {
    it(c[0], () => {
      const { attrs, x, w, b, dy, ref } = problem(c);
      const conv = new GemmConv(gemm, attrs, b);
      const y = conv.forward(x, w);
      expect(y.shape).toEqual(ref.shape);
      expect(maxRelErr(y.data, ref.data)).toBeLessThan(TOL);
      const grads = conv2dBackward(x, w, dy, attrs);
      const dw = conv.weightGrad(x, w, dy);
      expect(dw.shape).toEqual(w.shape);
      expect(maxRelErr(dw.data, grads.dw.data)).toBeLessThan(TOL);
      const dx = conv.inputGrad(x, w, dy);
      expect(dx.shape).toEqual(x.shape);
      expect(maxRelErr(dx.data, grads.dx.data)).toBeLessThan(TOL);
    });
  }
});

describe('GemmConv results do not depend on the thread count', () => {
  const counts = [1, 2, 3];
  const gemms: Gemm[] = [];
  beforeAll(async () => {
    for (const threads of counts) gemms.push(await createGemm({ threads, convChunkColumns: 48, parallelMinFlops: 0 }));
  });
  afterAll(() => gemms.forEach((g) => g.dispose()));

  it('starts the requested threads where shared memory exists (Node)', () => {
    expect(gemms.map((g) => g.threads)).toEqual(counts);
  });

  const cases: Case[] = [
    ['3×3 dense, 3 images of 20×20', [3, 8, 20, 20], [12, 8, 3, 3], { pads: [1, 1, 1, 1] }],
    ['strided, dilated, grouped', [5, 6, 13, 11], [9, 2, 3, 2], { group: 3, strides: [2, 1], dilations: [1, 2], pads: [0, 2, 1, 1] }],
    ['depthwise', [3, 10, 12, 9], [10, 1, 3, 3], { group: 10, pads: [1, 1, 1, 1] }],
    ['pointwise', [4, 12, 9, 9], [20, 12, 1, 1], {}],
    ['one image (inputs split by channel, outputs by chunk)', [1, 16, 17, 15], [8, 16, 3, 3], { pads: [1, 1, 1, 1] }],
  ];
  for (const c of cases) {
    it(`${c[0]}: bitwise equal with ${counts.join(', ')} threads`, () => {
      const { attrs, x, w, b, dy } = problem(c);
      const results = gemms.map((g) => {
        const conv = new GemmConv(g, attrs, b);
        return [conv.forward(x, w).data, conv.weightGrad(x, w, dy).data, conv.inputGrad(x, w, dy).data];
      });
      for (let t = 1; t < results.length; t++) {
        for (let pass = 0; pass < 3; pass++) expect(firstBitDifference(results[t]![pass]!, results[0]![pass]!), `threads ${counts[t]}, pass ${pass}`).toBe(-1);
      }
    });
  }
});

describe('GemmConv with its activation fused', () => {
  // ReLU and ReLU6 applied in wasm memory, on 1 and 3 threads (the sweep splits the tensor)
  const cases: [string, number, { lo: number; hi: number }][] = [
    ['ReLU, 1 thread', 1, { lo: 0, hi: Infinity }],
    ['ReLU, 3 threads', 3, { lo: 0, hi: Infinity }],
    ['ReLU6, 3 threads', 3, { lo: 0, hi: 6 }],
    // Clip's bounds are tensors of the input's type in ONNX: float32 values
    ['Clip(−0.5, 0.7), 2 threads', 2, { lo: -0.5, hi: Math.fround(0.7) }],
  ];
  for (const [name, threads, clamp] of cases) {
    it(`${name}: the fused forward and backward equal the separate passes bit for bit`, async () => {
      const gemm = await createGemm({ threads, parallelMinFlops: 0 });
      try {
        // 5·9·13·11 = 6,435 outputs: not a multiple of 16, so the threads' shares end mid-run
        const { attrs, x, w, b } = problem(['', [5, 4, 13, 11], [9, 4, 3, 3], { pads: [1, 1, 1, 1] }]);
        const conv = new GemmConv(gemm, attrs, b);
        const z = conv.forward(x, w);
        const separate = clamp.hi === Infinity ? reluForward(z) : clipForward(z, clamp.lo, clamp.hi);
        const y = conv.forward(x, w, clamp);
        expect(firstBitDifference(y.data, separate.data)).toBe(-1);
        const dy: Nd = { shape: y.shape, data: randn(y.data.length, rng(9)) };
        const dz = clipBackward(z, dy, clamp.lo, clamp.hi);
        // the mask from the output is the mask from the input
        expect(firstBitDifference(clipBackward(y, dy, clamp.lo, clamp.hi).data, dz.data)).toBe(-1);
        const fused = conv.backward(x, w, dy, { dx: true, dw: true }, { clamp, y });
        expect(firstBitDifference(fused.dx!.data, conv.inputGrad(x, w, dz).data)).toBe(-1);
        expect(firstBitDifference(fused.dw!.data, conv.weightGrad(x, w, dz).data)).toBe(-1);
        // some outputs are clamped at each end, so the masks are exercised
        expect(separate.data.some((v) => v === clamp.lo)).toBe(true);
        if (clamp.hi !== Infinity) expect(separate.data.some((v) => v === clamp.hi)).toBe(true);
      } finally {
        gemm.dispose();
      }
    });
  }
});

describe('GemmConv buffers', () => {
  it('lays its buffers out again when another user reset the Gemm', async () => {
    const gemm = await createGemm({ threads: 1 });
    const c: Case = ['', [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }];
    const { attrs, x, w, b, ref } = problem(c);
    const conv = new GemmConv(gemm, attrs, b);
    conv.forward(x, w);
    gemm.reset();
    gemm.f32(gemm.alloc(4096), 4096).fill(NaN); // someone else's data where the layer's buffers were
    expect(maxRelErr(conv.forward(x, w).data, ref.data)).toBeLessThan(TOL);
    gemm.dispose();
  });

  it('rejects a dy of the wrong shape', async () => {
    const gemm = await createGemm({ threads: 1 });
    const { attrs, x, w, b } = problem(['', [1, 2, 5, 5], [3, 2, 3, 3], {}]);
    const conv = new GemmConv(gemm, attrs, b);
    expect(() => conv.inputGrad(x, w, { shape: [1, 3, 5, 5], data: new Float32Array(75) })).toThrow(/dy is/);
    gemm.dispose();
  });
});
