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
import { actOrderPermutation, DECOUPLEQ_DEFAULTS, solveGroupScaleOffset, solveRows, solveScaleOffset } from './decoupleq';

/**
 * A Hessian of correlated inputs, as real layer inputs have; `spread` > 0 scales input i by
 * exp(spread·(u − ½)), u uniform, so that diag(H) varies by up to e^(2·spread) in no particular order.
 */
function hessian(n: number, samples: number, seed: number, spread = 0): Float64Array {
  const rand = rng(seed);
  const mix = randn(n * n, rand);
  const scale = Float64Array.from({ length: n }, () => (spread > 0 ? Math.exp(spread * (rand() - 0.5)) : 1));
  const x = new Float32Array(samples * n);
  for (let r = 0; r < samples; r++) {
    const z = randn(n, rand);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += mix[i * n + j]! * z[j]! * (j < 3 ? 3 : 1);
      x[r * n + i] = s * scale[i]!;
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

  it('act-order is on by default (both reference scripts) and orders columns by descending diag(H), ties by index', () => {
    expect(DECOUPLEQ_DEFAULTS.actOrder).toBe(true);
    const n = 5;
    const h = new Float64Array(n * n);
    [2, 7, 2, 9, 1].forEach((d, j) => (h[j * n + j] = d));
    expect(Array.from(actOrderPermutation(h, n)!)).toEqual([3, 1, 0, 2, 4]);
    [9, 7, 2, 2, 1].forEach((d, j) => (h[j * n + j] = d));
    expect(actOrderPermutation(h, n)).toBeNull();
  });

  it('act-order round-trips: on a problem whose diag(H) is already descending it gives exactly what it gives off, per row and per group', () => {
    const m = 6;
    const n = 40;
    const raw = hessian(n, 300, 11, 3);
    // relabel the columns so that diag(H) descends: act-order's permutation is then the identity
    const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => raw[b * n + b]! - raw[a * n + a]!);
    const h = Float64Array.from({ length: n * n }, (_, k) => raw[order[Math.floor(k / n)]! * n + order[k % n]!]!);
    expect(actOrderPermutation(h, n)).toBeNull();
    const w0 = Float64Array.from(randn(m * n, rng(12), 0.1));
    for (const group of [undefined, 16]) {
      const p = { w0, m, n, h, ...(group ? { group } : {}) };
      const on = solveRows(p, 2, 4, true);
      const off = solveRows(p, 2, 4, false);
      expect(on.q).toEqual(off.q);
      expect(on.s).toEqual(off.s);
      expect(on.z).toEqual(off.z);
      expect(on.err).toEqual(off.err);
    }
  });

  it('act-order is a relabelling: on a column-permuted problem it returns the same codes on the same (original) columns', () => {
    const m = 6;
    const n = 30;
    const h = hessian(n, 300, 13, 3);
    const w0 = Float64Array.from(randn(m * n, rng(14), 0.1));
    const perm = actOrderPermutation(h, n)!;
    expect(perm).not.toBeNull();
    // the same problem with its columns stored in act-order, solved without act-order
    const hp = Float64Array.from({ length: n * n }, (_, k) => h[perm[Math.floor(k / n)]! * n + perm[k % n]!]!);
    const wp = Float64Array.from({ length: m * n }, (_, k) => w0[Math.floor(k / n) * n + perm[k % n]!]!);
    const on = solveRows({ w0, m, n, h }, 2, 4, true);
    const pre = solveRows({ w0: wp, m, n, h: hp }, 2, 4, false);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) expect(on.q[i * n + perm[j]!]).toBe(pre.q[i * n + j]);
      expect(on.s[i]).toBeCloseTo(pre.s[i]!, 9);
      expect(on.z[i]).toBeCloseTo(pre.z[i]!, 9);
      expect(on.err[i]! / pre.err[i]!).toBeCloseTo(1, 9);
    }
  });

  it('act-order lowers the H-weighted error on a problem with strongly varying diag(H), per row and per group', () => {
    const m = 16;
    const n = 48;
    let on = 0;
    let off = 0;
    for (let seed = 0; seed < 3; seed++) {
      const h = hessian(n, 400, 100 + seed, 4);
      const w0 = Float64Array.from(randn(m * n, rng(200 + seed), 0.1));
      for (const group of [undefined, 16]) {
        const p = { w0, m, n, h, ...(group ? { group } : {}) };
        on += solveRows(p, 2, 4, true).err.reduce((a, b) => a + b, 0);
        off += solveRows(p, 2, 4, false).err.reduce((a, b) => a + b, 0);
      }
    }
    // GPTQ's error feedback does best when the loud columns go first, while later columns can still absorb their error
    expect(on).toBeLessThan(0.95 * off);
  });

  it('per group with act-order: codes on the grid, and each group of ORIGINAL columns keeps its own (s, z)', () => {
    const m = 6;
    const n = 40;
    const h = hessian(n, 300, 15, 4);
    const w0 = Float64Array.from(randn(m * n, rng(16), 0.05));
    for (let i = 0; i < m; i++) for (let j = 16; j < 32; j++) w0[i * n + j]! *= 15;
    expect(actOrderPermutation(h, n)).not.toBeNull();
    const { qmin, qmax } = intRange(2, true, false);
    // the export's reading: group g covers original columns 16g … 16g+15
    const dequant = (sol: { q: Int32Array; s: Float64Array; z: Float64Array }, i: number) =>
      Float64Array.from({ length: n }, (_, j) => sol.s[i * 3 + Math.floor(j / 16)]! * sol.q[i * n + j]! + sol.z[i * 3 + Math.floor(j / 16)]!);
    // one GPTQ pass under the min–max (s, z) of each original group: had a column been given the
    // (s, z) of the group at its permuted position, the loud group's codes would clip and the pass
    // would not beat plain min–max rounding
    const first = solveRows({ w0, m, n, h, group: 16 }, 2, 1, true);
    for (let i = 0; i < m; i++) {
      const row = w0.subarray(i * n, (i + 1) * n);
      const rtn = Float64Array.from(row, (v, j) => {
        const g = row.subarray(16 * Math.floor(j / 16), Math.min(n, 16 * Math.floor(j / 16) + 16));
        const lo = Math.min(0, ...g);
        const s = (Math.max(0, ...g) - lo) / (qmax - qmin);
        const z = lo - s * qmin;
        return s * Math.max(qmin, Math.min(qmax, roundHalfEven((v - z) / s))) + z;
      });
      expect(first.err[i]!).toBeLessThan(weightedError(h, n, row, rtn));
      expect(first.err[i]).toBeCloseTo(weightedError(h, n, row, dequant(first, i)), 6);
    }
    const perRow = solveRows({ w0, m, n, h }, 2, 3, true);
    const sol = solveRows({ w0, m, n, h, group: 16 }, 2, 3, true);
    expect(sol.q.length).toBe(m * n);
    for (const c of sol.q) expect(Number.isInteger(c) && c >= qmin && c <= qmax).toBe(true);
    expect(sol.s.length).toBe(m * 3);
    for (let i = 0; i < m; i++) {
      expect(sol.err[i]).toBeCloseTo(weightedError(h, n, w0.subarray(i * n, (i + 1) * n), dequant(sol, i)), 6);
      for (let g = 0; g < 3; g++) expect(sol.s[i * 3 + g]!).toBeGreaterThan(0);
    }
    // row by row the alternation is a heuristic either way; over the layer, groups help
    expect(sol.err.reduce((a, b) => a + b, 0)).toBeLessThan(perRow.err.reduce((a, b) => a + b, 0));
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
