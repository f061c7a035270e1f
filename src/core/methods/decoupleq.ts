import type { ModelProto } from '../onnx/schema';
import { tensorToFloat32 } from '../onnx/tensor-data';
import { attrInt, attrInts, attrString } from '../graph/attributes';
import type { QuantLayer } from '../graph/layers';
import type { Block } from '../graph/partition';
import { exportQdq, type QuantizedWeight } from '../export/qdq';
import { captureTensors, gatherRows, type Captured } from '../quant/calibrate';
import { intRange, onAxis, roundHalfEven, type Bits, type QuantParams } from '../quant/quantizer';
import { channelsFirst } from '../quant/weight-layout';
import { accumulateGram, finishHessian, inverseUpperFactor, matVec, weightedError } from '../quant/hessian';
import type { ImageBatches } from '../data/batches';
import { gridRuns, type Nd } from '../backends/cpu/reference';
import { Adam } from '../optim/adam';
import { BufferPool, scratch32 } from '../tensor/buffer-pool';
import { rng } from '../random';
import { cooperative, throwIfAborted, yieldToEventLoop, type Emit } from '../events';
import { BlockProgram } from '../engine/block-program';
import { DECOUPLEQ_BLOCK_ITERS, weightGranularity, type GroupSize } from '../plan';
import type { WasmConvPool } from '../engine/conv-engine';
import { gridOf } from './adaround';

/**
 * decoupleQ, the PTQ-only variant (algorithms.md §6, and the Decisions): each weight row is
 * ŵ = s·q + z with signed integers q and a float scale and offset per output channel, or per group
 * of `group` consecutive columns of the row (§6.4: W2A16g64/g128).
 *
 * Stage 1, layer by layer with the prefix already quantized: H = E[x xᵀ] of the layer's input
 * patches in float64, then alternate an integer step (GPTQ error feedback under the current s, z)
 * and a float step (the exact 2×2 least-squares solve per row), keeping each row's result only
 * where its H-weighted error improved. Stage 2, block by block: with the integers frozen, learn
 * s and z so that the block output matches the float model's (label-free MSE).
 *
 * Act-order (`actOrder`, on by default as in both reference scripts): every integer step visits
 * the columns by descending diag(H) (ties by column index, so the order is deterministic), with the
 * Cholesky factor of the permuted H, and writes each code back to its original column. Each column
 * keeps the (s, z) of its group over the ORIGINAL column order — the reference expands (s, z) to
 * one pair per column before permuting them along with the columns, i.e. GPTQ's "static groups" —
 * so group g still covers original columns g·size … (g+1)·size−1, as the export assumes (groups
 * of consecutive permuted columns would scatter over the row, which that layout cannot express).
 * The integer step never changes (s, z), so nothing needs recomputing in the permuted pass. The float
 * step and the error bookkeeping run on the original order: (w0 − ŵ)ᵀ H (w0 − ŵ) and its
 * least-squares (s, z) are unchanged by permuting H, w0 and q together when each column keeps its
 * group, so the permuted solve would only reorder floating-point sums (the reference solves it
 * unpermuted too).
 *
 * Departures, written down: the integer step uses the "gptq" rounding (the LLM recipe) rather than
 * the ResNet script's PGD+"train" rounding, whose n inner solves per layer cost too much on a CPU;
 * the first round's 160-candidate shrink search scores candidates by diag(H)-weighted error rather
 * than the full quadratic form (its closed-form refit and the improvement test use the full H);
 * ties round half to even, the studio's one rule.
 */
export interface DecoupleQOptions {
  /** Alternation rounds including the first GPTQ pass (the scripts' max_iter_num = 4). */
  readonly rounds: number;
  /** Hessian damping, a fraction of its mean diagonal (percdamp = 0.01). */
  readonly damp: number;
  /** Stage 2: iterations per block (0 skips it), batch, and Adam settings of the LLaMA script. */
  readonly blockIters: number;
  readonly batch: number;
  readonly blockLr: number;
  readonly seed: number;
  /** Integer steps visit columns by descending diag(H), groups staying on original columns (`--act-order`, on in both scripts). */
  readonly actOrder: boolean;
}

export const DECOUPLEQ_DEFAULTS: DecoupleQOptions = { rounds: 4, damp: 0.01, blockIters: DECOUPLEQ_BLOCK_ITERS, batch: 32, blockLr: 1e-5, seed: 0, actOrder: true };

/** One group of rows sharing an input Hessian (a conv group; all rows for a dense layer). */
interface RowProblem {
  readonly w0: Float64Array;
  readonly m: number;
  readonly n: number;
  readonly h: Float64Array;
  /** Columns per (s, z) group; absent: one (s, z) per row. The last group of a row may be shorter. */
  readonly group?: number;
}

/** Each row's (s, z) pairs: s[i·G + g] for row i, group g of G. */
interface RowSolution {
  readonly q: Int32Array;
  readonly s: Float64Array;
  readonly z: Float64Array;
  readonly err: Float64Array;
}

/** The 2×2 normal equations of min over (s, z) of (w0 − s·q − z)ᵀ H (w0 − s·q − z), solved exactly. */
export function solveScaleOffset(h: Float64Array, n: number, q: ArrayLike<number>, w0: ArrayLike<number>, at = 0): { s: number; z: number } {
  const hq = matVec(h, n, q, at);
  const hw = matVec(h, n, w0, at);
  let qhq = 0;
  let qh1 = 0;
  let one = 0;
  let qhw = 0;
  let ohw = 0;
  for (let i = 0; i < n; i++) {
    qhq += q[at + i]! * hq[i]!;
    qh1 += hq[i]!;
    qhw += q[at + i]! * hw[i]!;
    ohw += hw[i]!;
  }
  for (let i = 0; i < n * n; i++) one += h[i]!;
  let det = qhq * one - qh1 * qh1;
  // a near-singular system (one distinct code in the row) is clamped as the reference does
  if (Math.abs(det) < 1e-5) det = det < 0 ? -1e-5 : 1e-5;
  return { s: (qhw * one - qh1 * ohw) / det, z: (qhq * ohw - qh1 * qhw) / det };
}

/**
 * The per-group float step of one row (§6.2): the (s_g, z_g) of all G groups at once, from the
 * 2G×2G normal equations of min (w0 − ŵ)ᵀ H (w0 − ŵ) with ŵ_j = s_g(j)·q_j + z_g(j), solved in
 * float64; a singular system (a group with one distinct code) is damped by 1% of its mean
 * diagonal, as the reference retries.
 */
export function solveGroupScaleOffset(h: Float64Array, n: number, size: number, q: ArrayLike<number>, w0: ArrayLike<number>, at = 0): { s: Float64Array; z: Float64Array } {
  const groups = Math.ceil(n / size);
  const k = 2 * groups;
  const a = new Float64Array(k * k);
  const b = new Float64Array(k);
  for (let r = 0; r < n; r++) {
    const gr = 2 * Math.floor(r / size);
    const qr = q[at + r]!;
    for (let c = 0; c < n; c++) {
      const hv = h[r * n + c]!;
      if (hv === 0) continue;
      const gc = 2 * Math.floor(c / size);
      const qc = q[at + c]!;
      a[gr * k + gc]! += qr * hv * qc;
      a[gr * k + gc + 1]! += qr * hv;
      a[(gr + 1) * k + gc]! += hv * qc;
      a[(gr + 1) * k + gc + 1]! += hv;
      b[gr]! += qr * hv * w0[at + c]!;
      b[gr + 1]! += hv * w0[at + c]!;
    }
  }
  let mean = 0;
  for (let i = 0; i < k; i++) mean += a[i * k + i]!;
  mean /= k;
  for (let damp = 0; ; damp = damp ? damp * 10 : 0.01) {
    const m = Float64Array.from(a);
    for (let i = 0; i < k; i++) m[i * k + i]! += damp * mean;
    const x = solveDense(m, Float64Array.from(b), k);
    if (x) {
      const s = new Float64Array(groups);
      const z = new Float64Array(groups);
      for (let g = 0; g < groups; g++) [s[g], z[g]] = [x[2 * g]!, x[2 * g + 1]!];
      return { s, z };
    }
    if (damp > 100) throw new Error('decoupleQ: the per-group float step stayed singular after damping');
  }
}

/** Gaussian elimination with partial pivoting; null when a pivot vanishes. Overwrites `a` and `b`. */
function solveDense(a: Float64Array, b: Float64Array, k: number): Float64Array | null {
  let scale = 0;
  for (let i = 0; i < k * k; i++) scale = Math.max(scale, Math.abs(a[i]!));
  for (let col = 0; col < k; col++) {
    let piv = col;
    for (let r = col + 1; r < k; r++) if (Math.abs(a[r * k + col]!) > Math.abs(a[piv * k + col]!)) piv = r;
    if (!(Math.abs(a[piv * k + col]!) > 1e-12 * scale)) return null;
    if (piv !== col) {
      for (let c = 0; c < k; c++) [a[col * k + c], a[piv * k + c]] = [a[piv * k + c]!, a[col * k + c]!];
      [b[col], b[piv]] = [b[piv]!, b[col]!];
    }
    for (let r = col + 1; r < k; r++) {
      const f = a[r * k + col]! / a[col * k + col]!;
      if (f === 0) continue;
      for (let c = col; c < k; c++) a[r * k + c]! -= f * a[col * k + c]!;
      b[r]! -= f * b[col]!;
    }
  }
  const x = new Float64Array(k);
  for (let r = k - 1; r >= 0; r--) {
    let v = b[r]!;
    for (let c = r + 1; c < k; c++) v -= a[r * k + c]! * x[c]!;
    x[r] = v / a[r * k + r]!;
  }
  return x;
}

function quantizeRow(w: number, s: number, z: number, qmin: number, qmax: number): number {
  const q = roundHalfEven((w - z) / s);
  return q < qmin ? qmin : q > qmax ? qmax : q;
}

/** Groups per row, and the (s, z) index of column j of row i. */
function grouping(p: RowProblem): { groups: number; size: number; at: (i: number, j: number) => number } {
  const size = p.group ?? p.n;
  const groups = Math.ceil(p.n / size);
  return { groups, size, at: (i, j) => i * groups + Math.floor(j / size) };
}

/**
 * Act-order: the columns by descending diag(H), ties by index (a stable, deterministic order).
 * Null when that is the identity (nothing to permute).
 */
export function actOrderPermutation(h: Float64Array, n: number): Int32Array | null {
  const perm = Int32Array.from({ length: n }, (_, j) => j).sort((a, b) => h[b * n + b]! - h[a * n + a]! || a - b);
  return perm.every((c, j) => c === j) ? null : perm;
}

/** H[perm][:, perm]. */
function permuteHessian(h: Float64Array, n: number, perm: Int32Array): Float64Array {
  const out = new Float64Array(n * n);
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) out[a * n + b] = h[perm[a]! * n + perm[b]!]!;
  return out;
}

/**
 * GPTQ: quantize columns in the order `perm` (identity when null), pushing each column's error onto
 * the later ones through U = chol(H_perm⁻¹)ᵀ of the correspondingly permuted H. Column perm[j] uses
 * the (s, z) of its own group over the original column order, and its code goes back to column perm[j].
 */
function gptq(p: RowProblem, u: Float64Array, perm: Int32Array | null, s: Float64Array, z: Float64Array, qmin: number, qmax: number): Int32Array {
  const { m, n } = p;
  const { at } = grouping(p);
  const w = new Float64Array(n);
  const q = new Int32Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    // w is row i in visiting order
    for (let j = 0; j < n; j++) w[j] = p.w0[row + (perm ? perm[j]! : j)]!;
    for (let j = 0; j < n; j++) {
      const col = perm ? perm[j]! : j;
      const v = w[j]!;
      const k = at(i, col);
      const c = quantizeRow(v, s[k]!, z[k]!, qmin, qmax);
      q[row + col] = c;
      const e = (v - (s[k]! * c + z[k]!)) / u[j * n + j]!;
      for (let l = j + 1; l < n; l++) w[l]! -= e * u[j * n + l]!;
    }
  }
  return q;
}

function rowErrors(p: RowProblem, q: Int32Array, s: Float64Array, z: Float64Array): Float64Array {
  const { at } = grouping(p);
  const err = new Float64Array(p.m);
  const what = new Float64Array(p.n);
  for (let i = 0; i < p.m; i++) {
    for (let j = 0; j < p.n; j++) what[j] = s[at(i, j)]! * q[i * p.n + j]! + z[at(i, j)]!;
    err[i] = weightedError(p.h, p.n, p.w0.subarray(i * p.n, (i + 1) * p.n), what);
  }
  return err;
}

/** Keeps, row by row, whichever of `best` and `cand` has the lower error; returns how many rows improved. */
function keepImproved(best: { q: Int32Array; s: Float64Array; z: Float64Array; err: Float64Array }, cand: RowSolution, n: number, groups: number): number {
  let improved = 0;
  for (let i = 0; i < best.err.length; i++) {
    const gs = cand.s.subarray(i * groups, (i + 1) * groups);
    if (!(cand.err[i]! < best.err[i]!) || !gs.every((v) => v > 0)) continue;
    improved++;
    best.err[i] = cand.err[i]!;
    best.s.set(gs, i * groups);
    best.z.set(cand.z.subarray(i * groups, (i + 1) * groups), i * groups);
    best.q.set(cand.q.subarray(i * n, (i + 1) * n), i * n);
  }
  return improved;
}

/** Stage 1 for one group of rows; `actOrder` orders the integer steps' columns by descending diag(H). */
export function solveRows(p: RowProblem, bits: Bits, rounds: number, actOrder = DECOUPLEQ_DEFAULTS.actOrder): RowSolution {
  const { m, n, w0 } = p;
  const { groups, size, at } = grouping(p);
  const { qmin, qmax } = intRange(bits, true, false);
  const levels = qmax - qmin;
  // columns [j0, j1) of row i
  const span = (g: number) => [g * size, Math.min(n, (g + 1) * size)] as const;
  const minMax = (i: number, g: number, shrink = 1) => {
    let lo = 0;
    let hi = 0;
    const [j0, j1] = span(g);
    for (let j = j0; j < j1; j++) {
      lo = Math.min(lo, w0[i * n + j]!);
      hi = Math.max(hi, w0[i * n + j]!);
    }
    if (lo === 0 && hi === 0) [lo, hi] = [-1, 1];
    const s = ((hi - lo) * shrink) / levels;
    return { s, z: lo * shrink - s * qmin };
  };
  const s = new Float64Array(m * groups);
  const z = new Float64Array(m * groups);
  for (let i = 0; i < m; i++) for (let g = 0; g < groups; g++) ({ s: s[i * groups + g], z: z[i * groups + g] } = minMax(i, g));
  const q = Int32Array.from({ length: m * n }, (_, k) => quantizeRow(w0[k]!, s[at(Math.floor(k / n), k % n)]!, z[at(Math.floor(k / n), k % n)]!, qmin, qmax));
  const best = { q, s, z, err: rowErrors(p, q, s, z) };
  // act-order touches only the integer steps (see the header): their visiting order and factor
  const perm = actOrder ? actOrderPermutation(p.h, n) : null;
  const u = inverseUpperFactor(perm ? permuteHessian(p.h, n, perm) : p.h, n);
  const integerStep = () => {
    const cand = { q: gptq(p, u, perm, best.s, best.z, qmin, qmax), s: Float64Array.from(best.s), z: Float64Array.from(best.z) };
    return keepImproved(best, { ...cand, err: rowErrors(p, cand.q, cand.s, cand.z) }, n, groups);
  };
  const floatStep = (from: { q: Int32Array }) => {
    const cs = new Float64Array(m * groups);
    const cz = new Float64Array(m * groups);
    for (let i = 0; i < m; i++) {
      if (groups === 1) ({ s: cs[i], z: cz[i] } = solveScaleOffset(p.h, n, from.q, w0, i * n));
      else {
        const sol = solveGroupScaleOffset(p.h, n, size, from.q, w0, i * n);
        cs.set(sol.s, i * groups);
        cz.set(sol.z, i * groups);
      }
    }
    return keepImproved(best, { q: from.q, s: cs, z: cz, err: rowErrors(p, from.q, cs, cz) }, n, groups);
  };
  integerStep();
  for (let r = 1; r < rounds; r++) {
    if (r === 1) {
      // shrink search over 160 candidates (p = 1 − i/200) per group, then the exact refit of the chosen integers
      const sq = new Int32Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let g = 0; g < groups; g++) {
          const [j0, j1] = span(g);
          let bestScore = Infinity;
          for (let c = 0; c < 160; c++) {
            const cand = minMax(i, g, 1 - c / 200);
            let score = 0;
            for (let j = j0; j < j1; j++) {
              const v = w0[i * n + j]!;
              score += p.h[j * n + j]! * (v - (cand.s * quantizeRow(v, cand.s, cand.z, qmin, qmax) + cand.z)) ** 2;
            }
            if (score < bestScore) {
              bestScore = score;
              for (let j = j0; j < j1; j++) sq[i * n + j] = quantizeRow(w0[i * n + j]!, cand.s, cand.z, qmin, qmax);
            }
          }
        }
      }
      floatStep({ q: sq });
    }
    const a = integerStep();
    const b = floatStep(best);
    if (a + b < m * 1e-4) break;
  }
  return best;
}

/** Im2col rows of one conv group: every output position's input patch, [positions, (C/g)·kh·kw]. */
function convPatches(x: Captured, image: number, group: number, cg: number, k: readonly [number, number], st: readonly [number, number], pads: readonly number[], dil: readonly [number, number], out: readonly [number, number], into: Float32Array): number {
  const [, C, H, W] = x.shape as [number, number, number, number];
  const n = cg * k[0] * k[1];
  let r = 0;
  for (let oy = 0; oy < out[0]; oy++) {
    for (let ox = 0; ox < out[1]; ox++, r++) {
      let col = 0;
      for (let c = 0; c < cg; c++) {
        const plane = (image * C + group * cg + c) * H * W;
        for (let ky = 0; ky < k[0]; ky++) {
          const iy = oy * st[0] - pads[0]! + ky * dil[0];
          for (let kx = 0; kx < k[1]; kx++, col++) {
            const ix = ox * st[1] - pads[1]! + kx * dil[1];
            into[r * n + col] = iy >= 0 && iy < H && ix >= 0 && ix < W ? x.data[plane + iy * W + ix]! : 0;
          }
        }
      }
    }
  }
  return r;
}

/** The input Hessians of a layer, one per conv group, from its captured inputs. */
function layerHessians(layer: QuantLayer, x: Captured, damp: number): { h: Float64Array; n: number }[] {
  const node = layer.node;
  if (layer.kind !== 'conv') {
    const n = layer.weightDims[layer.channelAxis === 0 ? 1 : 0]!;
    const rows = x.data.length / n;
    const h = new Float64Array(n * n);
    accumulateGram(h, x.data, rows, n);
    finishHessian(h, n, rows, damp);
    return [{ h, n }];
  }
  if (attrString(node, 'auto_pad', 'NOTSET') !== 'NOTSET') throw new Error(`layer "${layer.name}": decoupleQ does not support auto_pad convolutions yet`);
  const [K, cg, kh, kw] = layer.weightDims as [number, number, number, number];
  const groups = attrInt(node, 'group', 1);
  const st = (attrInts(node, 'strides') ?? [1, 1]) as [number, number];
  const dil = (attrInts(node, 'dilations') ?? [1, 1]) as [number, number];
  const pads = attrInts(node, 'pads') ?? [0, 0, 0, 0];
  const [N, , H, W] = x.shape as [number, number, number, number];
  const out = [Math.floor((H + pads[0]! + pads[2]! - dil[0] * (kh - 1) - 1) / st[0]) + 1, Math.floor((W + pads[1]! + pads[3]! - dil[1] * (kw - 1) - 1) / st[1]) + 1] as const;
  const n = cg * kh * kw;
  const patches = new Float32Array(out[0] * out[1] * n);
  void K;
  return Array.from({ length: groups }, (_, g) => {
    const h = new Float64Array(n * n);
    for (let i = 0; i < N; i++) accumulateGram(h, patches, convPatches(x, i, g, cg, [kh, kw], st, pads, dil, out, patches), n);
    finishHessian(h, n, N * out[0] * out[1], damp);
    return { h, n };
  });
}

export interface DecoupleQInput {
  readonly model: ModelProto;
  readonly layers: readonly QuantLayer[];
  readonly blocks: readonly Block[];
  readonly bitsFor: (layer: QuantLayer) => Bits;
  readonly calib: ImageBatches;
  readonly convs: WasmConvPool;
  readonly options: Partial<DecoupleQOptions>;
  readonly groupSize?: GroupSize;
}

function paramsOf(layer: QuantLayer, bits: Bits, groupSize: GroupSize | undefined, s: Float64Array, z: Float64Array): QuantParams {
  return { bits, signed: true, symmetric: false, granularity: weightGranularity(groupSize, layer.channelAxis), scale: Float32Array.from(s), zeroPoint: new Int32Array(s.length), offset: Float32Array.from(z) };
}

/** Both stages over the model; returns weights whose params carry the float offsets. */
export async function decoupleqModel(input: DecoupleQInput, emit: Emit, signal?: AbortSignal): Promise<QuantizedWeight[]> {
  const o = { ...DECOUPLEQ_DEFAULTS, ...input.options };
  const { model, layers, calib } = input;
  const done: QuantizedWeight[] = [];
  // stage 1: layer by layer, each Hessian from the prefix as quantized so far
  for (const [li, layer] of layers.entries()) {
    throwIfAborted(signal);
    const prefix = exportQdq({ model, weights: done, activations: new Map(), weightFormat: 'float' });
    const inputName = layer.node.input![0]!;
    const x = (await captureTensors(prefix, [inputName], calib, signal)).get(inputName)!;
    const hs = layerHessians(layer, x, o.damp);
    const w = channelsFirst(tensorToFloat32(layer.weightTensor), layer.weightDims, layer.channelAxis);
    const m = w.dims[0]!;
    const perGroup = m / hs.length;
    // (s, z) pairs per row: one, or one per group of input columns
    const perRow = input.groupSize ? Math.ceil(hs[0]!.n / input.groupSize) : 1;
    const q = new Int32Array(w.data.length);
    const s = new Float64Array(m * perRow);
    const z = new Float64Array(m * perRow);
    let err = 0;
    for (const [g, { h, n }] of hs.entries()) {
      await yieldToEventLoop();
      throwIfAborted(signal);
      const rows = Float64Array.from(w.data.subarray(g * perGroup * n, (g + 1) * perGroup * n));
      const sol = solveRows({ w0: rows, m: perGroup, n, h, ...(input.groupSize ? { group: input.groupSize } : {}) }, input.bitsFor(layer), o.rounds, o.actOrder);
      q.set(sol.q, g * perGroup * n);
      s.set(sol.s, g * perGroup * perRow);
      z.set(sol.z, g * perGroup * perRow);
      err += sol.err.reduce((a, b) => a + b, 0);
    }
    done.push({ layer, codes: w.back(q), params: paramsOf(layer, input.bitsFor(layer), input.groupSize, s, z) });
    emit({ type: 'progress', stage: 'quantize', done: li + 1, total: layers.length + (o.blockIters ? input.blocks.length : 0) });
    emit({ type: 'info', message: `decoupleQ ${layer.name}: ${input.bitsFor(layer)}-bit, H-weighted output error ${err.toPrecision(3)}` });
  }
  if (o.blockIters > 0) await refineFloatParts(input, o, done, emit, signal);
  return done;
}

/**
 * Stage 2: block by block, the integers frozen, Adam on each row's (s, z) so that the block's
 * output on inputs from the quantized prefix matches the float model's (§6.3, without labels).
 */
async function refineFloatParts(input: DecoupleQInput, o: DecoupleQOptions, done: QuantizedWeight[], emit: Emit, signal?: AbortSignal): Promise<void> {
  const { model, layers, blocks, calib } = input;
  const byLayer = new Map(done.map((w, i) => [w.layer.name, i]));
  for (const [bi, block] of blocks.entries()) {
    if (block.layers.length === 0) continue;
    throwIfAborted(signal);
    const program = BlockProgram.compile(model, block, layers, await input.convs.factory());
    const prefix = exportQdq({ model, weights: done.filter((w) => !block.layers.includes(w.layer.name)), activations: new Map(), weightFormat: 'float' });
    const xs = (await captureTensors(prefix, [block.input], calib, signal)).get(block.input)!;
    const target = (await captureTensors(model, [block.output], calib, signal)).get(block.output)!;
    const slots = program.slots.map((slot) => {
      const qw = done[byLayer.get(slot.layer.name)!]!;
      const q = channelsFirst(Float32Array.from(qw.codes), qw.layer.weightDims, qw.layer.channelAxis).data;
      const s = Float32Array.from(qw.params.scale);
      const z = Float32Array.from(qw.params.offset!);
      return { q, s, z, grid: gridOf(onAxis(qw.params, 0)), adamS: new Adam(s, { lr: o.blockLr, beta2: 0.99, eps: 2e-5 }), adamZ: new Adam(z, { lr: o.blockLr, beta2: 0.99, eps: 2e-5 }), shape: slot.weight.shape };
    });
    const weightOf = (sl: (typeof slots)[number]): Nd => {
      const data = new Float32Array(sl.q.length);
      gridRuns({ shape: sl.shape, data }, sl.grid, 'decoupleQ', (k, start, end) => {
        for (let j = start; j < end; j++) data[j] = sl.s[k]! * sl.q[j]! + sl.z[k]!;
      });
      return { shape: sl.shape, data };
    };
    const n = xs.shape[0]!;
    const bs = Math.min(o.batch, n);
    const rand = rng(o.seed * 7919 + 31 + bi);
    const pace = cooperative(signal);
    let rec = 0;
    const pool = new BufferPool();
    for (let t = 0; t < o.blockIters; t++) {
      await pace();
      // one iteration's activations and gradients come from the pool and go back to it
      rec = pool.run(() => iteration());
      pool.reclaim();
      if (t % Math.max(1, Math.floor(o.blockIters / 100)) === 0) emit({ type: 'loss', layer: `${block.id} (s, z)`, iter: t, rec, reg: 0, beta: null });
    }
    function iteration(): number {
      const idx = Array.from({ length: bs }, () => Math.floor(rand() * n));
      const x = gatherRows(xs, idx);
      const y = gatherRows(target, idx).data;
      const weights = slots.map(weightOf);
      const tape = program.forward(x, weights);
      const P = tape.output.data;
      const grad = scratch32(P.length);
      let loss = 0;
      for (let i = 0; i < P.length; i++) {
        const e = P[i]! - y[i]!;
        loss += e * e;
        grad[i] = (2 * e) / P.length;
      }
      const g = program.backward(tape, weights, { shape: tape.output.shape, data: grad });
      slots.forEach((sl, k) => {
        const dW = g.weights[k];
        if (!dW) return;
        const ds = new Float32Array(sl.s.length);
        const dz = new Float32Array(sl.s.length);
        gridRuns(dW, sl.grid, 'decoupleQ', (p, start, end) => {
          for (let j = start; j < end; j++) {
            ds[p]! += dW.data[j]! * sl.q[j]!;
            dz[p]! += dW.data[j]!;
          }
        });
        sl.adamS.step(ds);
        sl.adamZ.step(dz);
      });
      return loss / P.length;
    }
    program.slots.forEach((slot, k) => {
      const i = byLayer.get(slot.layer.name)!;
      const sl = slots[k]!;
      if (!Array.from(sl.s).every((v) => v > 0)) return; // a step that turned a scale negative is not kept
      done[i] = { ...done[i]!, params: { ...done[i]!.params, scale: Float32Array.from(sl.s), offset: Float32Array.from(sl.z) } };
    });
    emit({ type: 'info', message: `decoupleQ ${block.id}: block-wise float refinement, final MSE ${rec.toPrecision(3)}` });
  }
}
