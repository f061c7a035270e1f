import { describe, expect, it } from 'vitest';
import { randn, rng } from '../random';
import { intRange, roundHalfEven } from '../quant/quantizer';
import { accumulateGram, finishHessian, weightedError } from '../quant/hessian';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { exportQdq, type QuantizedWeight } from '../export/qdq';
import { encodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { channelsFirst } from '../quant/weight-layout';
import { tinyResNet } from '../testing/tiny-resnet';
import { solveGroupScaleOffset, solveRows, solveScaleOffset } from './decoupleq';

/** A Hessian of correlated inputs, as real layer inputs have. */
function hessian(n: number, samples: number, seed: number): Float64Array {
  const rand = rng(seed);
  const mix = randn(n * n, rand);
  const x = new Float32Array(samples * n);
  for (let r = 0; r < samples; r++) {
    const z = randn(n, rand);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += mix[i * n + j]! * z[j]! * (j < 3 ? 3 : 1);
      x[r * n + i] = s;
    }
  }
  const h = new Float64Array(n * n);
  accumulateGram(h, x, samples, n);
  finishHessian(h, n, samples, 0.01);
  return h;
}

describe('decoupleQ', () => {
  it("the float step solves its 2×2 system exactly: a row that is s·q + z is recovered", () => {
    const n = 24;
    const h = hessian(n, 200, 1);
    const rand = rng(2);
    const q = Float64Array.from({ length: n }, () => Math.floor(rand() * 4) - 2);
    const w0 = Float64Array.from(q, (v) => 0.037 * v - 0.011);
    const { s, z } = solveScaleOffset(h, n, q, w0);
    expect(s).toBeCloseTo(0.037, 9);
    expect(z).toBeCloseTo(-0.011, 9);
  });

  it('the float step is the least-squares optimum: nudging s or z raises the H-weighted error', () => {
    const n = 16;
    const h = hessian(n, 100, 3);
    const w0 = Float64Array.from(randn(n, rng(4)));
    const q = Float64Array.from(w0, (v) => Math.max(-2, Math.min(1, roundHalfEven(v / 0.5))));
    const { s, z } = solveScaleOffset(h, n, q, w0);
    const err = (s2: number, z2: number) => weightedError(h, n, w0, Float64Array.from(q, (v) => s2 * v + z2));
    const best = err(s, z);
    for (const [ds, dz] of [[1e-3, 0], [-1e-3, 0], [0, 1e-3], [0, -1e-3]] as const) expect(err(s + ds, z + dz)).toBeGreaterThan(best);
  });

  it('the per-group float step solves its 2G×2G system exactly: a row that is s_g·q + z_g per group is recovered, shorter last group included', () => {
    const n = 20;
    const h = hessian(n, 200, 7);
    const rand = rng(8);
    const q = Float64Array.from({ length: n }, () => Math.floor(rand() * 4) - 2);
    const s = [0.03, 0.11, 0.07];
    const z = [-0.01, 0.02, 0.005];
    const w0 = Float64Array.from(q, (v, j) => s[Math.floor(j / 8)]! * v + z[Math.floor(j / 8)]!);
    const sol = solveGroupScaleOffset(h, n, 8, q, w0);
    expect(sol.s.length).toBe(3);
    for (let g = 0; g < 3; g++) {
      expect(sol.s[g]).toBeCloseTo(s[g]!, 8);
      expect(sol.z[g]).toBeCloseTo(z[g]!, 8);
    }
  });

  it('stage 1 per group: (s, z) for each group of columns, and a lower H-weighted error than per row on rows with a loud group', () => {
    const m = 6;
    const n = 40;
    const h = hessian(n, 300, 9);
    const w0 = Float64Array.from(randn(m * n, rng(10), 0.05));
    for (let i = 0; i < m; i++) for (let j = 16; j < 32; j++) w0[i * n + j]! *= 15;
    const perRow = solveRows({ w0, m, n, h }, 2, 3);
    const perGroup = solveRows({ w0, m, n, h, group: 16 }, 2, 3);
    expect(perGroup.s.length).toBe(m * 3);
    for (let i = 0; i < m; i++) {
      const row = w0.subarray(i * n, (i + 1) * n);
      const got = Float64Array.from({ length: n }, (_, j) => perGroup.s[i * 3 + Math.floor(j / 16)]! * perGroup.q[i * n + j]! + perGroup.z[i * 3 + Math.floor(j / 16)]!);
      expect(perGroup.err[i]).toBeCloseTo(weightedError(h, n, row, got), 6);
      expect(perGroup.err[i]!).toBeLessThan(perRow.err[i]!);
    }
  });

  it('stage 1 lowers every row’s H-weighted error below min–max rounding, with codes on the signed 2-bit grid', () => {
    const m = 8;
    const n = 27;
    const h = hessian(n, 300, 5);
    const w0 = Float64Array.from(randn(m * n, rng(6), 0.2));
    const sol = solveRows({ w0, m, n, h }, 2, 4);
    const { qmin, qmax } = intRange(2, true, false);
    for (const c of sol.q) expect(c >= qmin && c <= qmax).toBe(true);
    for (let i = 0; i < m; i++) {
      const row = w0.subarray(i * n, (i + 1) * n);
      const lo = Math.min(0, ...row);
      const hi = Math.max(0, ...row);
      const s = (hi - lo) / 3;
      const z = lo + 2 * s;
      const rtn = Float64Array.from(row, (v) => s * Math.max(qmin, Math.min(qmax, roundHalfEven((v - z) / s))) + z);
      const got = Float64Array.from({ length: n }, (_, j) => sol.s[i]! * sol.q[i * n + j]! + sol.z[i]!);
      expect(sol.err[i]).toBeCloseTo(weightedError(h, n, row, got), 6);
      expect(sol.err[i]!).toBeLessThan(weightedError(h, n, row, rtn));
    }
  });

  it('exports the float offset exactly: the integer QDQ model computes what the dequantized-float export computes', async () => {
    const { model } = canonicalize(tinyResNet(2, { channels: 4, size: 8 }));
    const layers = findQuantLayers(model);
    const rand = rng(9);
    const weights: QuantizedWeight[] = layers.map((layer) => {
      const w = channelsFirst(tensorToFloat32(layer.weightTensor), layer.weightDims, layer.channelAxis);
      const m = w.dims[0]!;
      const codes = Int32Array.from({ length: w.data.length }, () => Math.floor(rand() * 4) - 2);
      const scale = Float32Array.from({ length: m }, () => 0.05 + 0.1 * rand());
      const offset = Float32Array.from({ length: m }, () => 0.05 * (rand() - 0.5));
      return { layer, codes: w.back(codes), params: { bits: 2, signed: true, symmetric: false, granularity: { kind: 'channel', axis: layer.channelAxis }, scale, zeroPoint: new Int32Array(m), offset } };
    });
    const x = randn(2 * 64, rng(10));
    const run = async (format: 'integer' | 'float') => {
      const s = await ModelSession.create(encodeModel(exportQdq({ model, weights, activations: new Map(), weightFormat: format })), 'all');
      try {
        return [...(await s.run(x, [2, 1, 8, 8])).values()][0]!.data;
      } finally {
        await s.release();
      }
    };
    const a = await run('integer');
    const b = await run('float');
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
    expect(worst).toBeLessThan(1e-5);
  });
});
