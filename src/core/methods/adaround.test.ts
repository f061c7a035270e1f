import { describe, expect, it } from 'vitest';
import { adaroundLayer, betaAt, convLayer, gemmLayer, ADAROUND_DEFAULTS } from './adaround';
import { conv2dAttrs, conv2dForward, gemmForward, reluForward, type Nd } from '../backends/cpu/reference';
import { dequantizeTensor, quantizeTensor, weightParams } from '../quant/quantizer';
import { randn, rng } from '../random';

function mse(a: Nd, b: Nd): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += (a.data[i]! - b.data[i]!) ** 2;
  return s / a.data.length;
}

describe('β schedule', () => {
  it('is off for the first 20% of iterations, then decays linearly from 20 to 2', () => {
    const o = { ...ADAROUND_DEFAULTS, iters: 1000 };
    expect(betaAt(0, o)).toBeNull();
    expect(betaAt(199, o)).toBeNull();
    expect(betaAt(200, o)).toBe(20);
    expect(betaAt(600, o)).toBeCloseTo(11, 10);
    expect(betaAt(1000, o)).toBeCloseTo(2, 10);
  });
});

describe('AdaRound on one layer', () => {
  it('conv 3×3 at 3 bits: the learned rounding beats round-to-nearest on held-out inputs, and ends binary', async () => {
    const rand = rng(3);
    const [N, C, K, S] = [96, 6, 8, 6];
    const attrs = conv2dAttrs({ pads: [1, 1, 1, 1] });
    const w: Nd = { shape: [K, C, 3, 3], data: randn(K * C * 9, rand, 0.3) };
    const b: Nd = { shape: [K], data: randn(K, rand, 0.1) };
    const x: Nd = { shape: [N, C, S, S], data: reluForward({ shape: [1], data: randn(N * C * S * S, rand) }).data };
    const train: Nd = { shape: [64, C, S, S], data: x.data.subarray(0, 64 * C * S * S) };
    const test: Nd = { shape: [32, C, S, S], data: x.data.subarray(64 * C * S * S) };
    const target = (inp: Nd) => reluForward(conv2dForward(inp, w, b, attrs));
    const params = weightParams(w.data, w.shape, { bits: 3, symmetric: true, granularity: { kind: 'channel', axis: 0 } }, 'minmax');
    const rtn: Nd = { shape: w.shape, data: dequantizeTensor(quantizeTensor(w.data, w.shape, params), w.shape, params) };
    const result = await adaroundLayer(
      { layer: convLayer(attrs, b), weight: w, params, inputs: train, targets: target(train), activation: { kind: 'relu' } },
      { iters: 3000, lr: 1e-2, seed: 1 },
    );
    const ada: Nd = { shape: w.shape, data: dequantizeTensor(result.codes, w.shape, params) };
    const errRtn = mse(reluForward(conv2dForward(test, rtn, b, attrs)), target(test));
    const errAda = mse(reluForward(conv2dForward(test, ada, b, attrs)), target(test));
    expect(errAda).toBeLessThan(0.9 * errRtn);
    // the regulariser drives h(V) to 0 or 1: |2h − 1| near 1 for (almost) every weight
    const binary = Array.from(result.h).filter((h) => Math.abs(2 * h - 1) > 0.99).length / result.h.length;
    expect(binary).toBeGreaterThan(0.97);
    // every code is floor(w/s) or floor(w/s) + 1: AdaRound only chooses the rounding direction
    for (let i = 0; i < w.data.length; i++) {
      const s = params.scale[Math.floor(i / (C * 9))]!;
      const f = Math.floor(w.data[i]! / s);
      expect([f, f + 1].map((q) => Math.max(-4, Math.min(3, q)))).toContain(result.codes[i]);
    }
  });

  it('Gemm without activation at 3 bits, correlated inputs: beats round-to-nearest too', async () => {
    const rand = rng(9);
    const [N, I, O] = [256, 16, 8];
    const w: Nd = { shape: [O, I], data: randn(O * I, rand, 0.4) };
    // correlated inputs with a non-zero mean, like post-ReLU activations: where rounding choices interact
    const z = randn(N * I, rand);
    const mix = randn(I * I, rand, 0.5);
    const xs = new Float32Array(N * I);
    for (let n = 0; n < N; n++) for (let j = 0; j < I; j++) {
      let acc = 1;
      for (let k = 0; k < I; k++) acc += z[n * I + k]! * mix[k * I + j]!;
      xs[n * I + j] = acc;
    }
    const x: Nd = { shape: [N, I], data: xs };
    const params = weightParams(w.data, w.shape, { bits: 3, symmetric: true, granularity: { kind: 'channel', axis: 0 } }, 'minmax');
    const result = await adaroundLayer(
      { layer: gemmLayer(null), weight: w, params, inputs: x, targets: gemmForward(x, w, null), activation: null },
      { iters: 3000, lr: 1e-2, seed: 2 },
    );
    const rtn: Nd = { shape: w.shape, data: dequantizeTensor(quantizeTensor(w.data, w.shape, params), w.shape, params) };
    const ada: Nd = { shape: w.shape, data: dequantizeTensor(result.codes, w.shape, params) };
    const t = gemmForward(x, w, null);
    expect(mse(gemmForward(x, ada, null), t)).toBeLessThan(0.9 * mse(gemmForward(x, rtn, null), t));
  });
});
