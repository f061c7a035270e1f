import {
  adaroundBackward,
  adaroundForward,
  adaroundInit,
  adaroundRegBackward,
  adaroundRegForward,
  conv2dBackward,
  conv2dForward,
  gemmBackward,
  gemmForward,
  gridRuns,
  rectifiedSigmoid,
  type Conv2dAttrs,
  type Nd,
  type QuantGrid,
} from '../backends/cpu/reference';
import { Adam } from '../optim/adam';
import { BufferPool, scratch32 } from '../tensor/buffer-pool';
import { rng } from '../random';
import type { QuantParams } from '../quant/quantizer';
import { intRange } from '../quant/quantizer';
import { cooperative } from '../events';
import { ADAROUND_ITERS } from '../plan';
import { gatherRows } from '../quant/calibrate';

/** AdaRound's knobs, with the reference defaults (algorithms.md §2.3–2.4). */
export interface AdaRoundOptions {
  readonly iters: number;
  readonly batch: number;
  readonly lr: number;
  readonly lambda: number;
  readonly betaStart: number;
  readonly betaEnd: number;
  /** Fraction of iterations run without the regulariser. */
  readonly warmup: number;
  readonly seed: number;
}

export const ADAROUND_DEFAULTS: AdaRoundOptions = { iters: ADAROUND_ITERS, batch: 32, lr: 1e-3, lambda: 0.01, betaStart: 20, betaEnd: 2, warmup: 0.2, seed: 0 };

/**
 * β at iteration `t` (0-based) of `iters`: null during warm-up (no regulariser), then a linear decay
 * from βstart to βend over the remaining iterations, as BRECQ, QDrop and MQBench do.
 */
export function betaAt(t: number, o: Pick<AdaRoundOptions, 'iters' | 'warmup' | 'betaStart' | 'betaEnd'>): number | null {
  const start = o.warmup * o.iters;
  if (t < start) return null;
  const rel = (t - start) / (o.iters - start);
  return o.betaEnd + (o.betaStart - o.betaEnd) * (1 - rel);
}

/** The layer whose rounding is learned: what maps its input to its pre-activation output, and its weight gradient. */
export interface LinearLayer {
  forward(x: Nd, w: Nd): Nd;
  weightGrad(x: Nd, w: Nd, dy: Nd): Nd;
}

export function convLayer(attrs: Conv2dAttrs, bias: Nd | null): LinearLayer {
  return {
    forward: (x, w) => conv2dForward(x, w, bias, attrs),
    weightGrad: (x, w, dy) => conv2dBackward(x, w, dy, attrs).dw,
  };
}

export function gemmLayer(bias: Nd | null): LinearLayer {
  return {
    forward: (x, w) => gemmForward(x, w, bias),
    weightGrad: (x, w, dy) => gemmBackward(x, w, dy).dw,
  };
}

export type FollowingActivation = { kind: 'relu' } | { kind: 'clip'; min: number; max: number } | null;

export interface AdaRoundProblem {
  readonly layer: LinearLayer;
  readonly weight: Nd;
  /** The grid the weight is rounded onto (channels on axis 0). */
  readonly params: QuantParams;
  /** Cached layer inputs x̃ from the already-quantized prefix, [N, ...]. */
  readonly inputs: Nd;
  /** Cached FP targets f_a(W x), [N, ...]. */
  readonly targets: Nd;
  readonly activation: FollowingActivation;
}

export interface AdaRoundTrace {
  readonly iter: number;
  readonly rec: number;
  readonly reg: number;
  readonly beta: number | null;
}

export interface AdaRoundResult {
  /** Integer codes on `params`' grid. */
  readonly codes: Int32Array;
  /** Final soft rounding h(V), for inspection: it should end near 0 or 1 everywhere. */
  readonly h: Float32Array;
  readonly trace: readonly AdaRoundTrace[];
}

/** The engine's view of parameters found on a channels-first weight (channel axis 0). */
export function gridOf(p: QuantParams): QuantGrid {
  const { qmin, qmax } = intRange(p.bits, p.signed, p.symmetric);
  if (p.granularity.kind !== 'tensor' && p.granularity.axis !== 0) throw new Error(`quantizer grid: channels must be on axis 0, got axis ${p.granularity.axis}`);
  return { scale: p.scale, zero: p.zeroPoint, qmin, qmax, ...(p.granularity.kind === 'group' ? { group: p.granularity.size } : {}) };
}

/**
 * AdaRound on one layer (algorithms.md §2): learn, per weight, whether to round down or up, by
 * minimising ‖f_a(W x) − f_a(Ŵ x̃)‖² + λ Σ (1 − |2h(V) − 1|^β) with Adam on V. The reconstruction
 * term is normalised as the references do (sum over channels, mean over batch and positions),
 * which is what λ = 0.01 is tuned for. Deterministic for a seed.
 */
export async function adaroundLayer(problem: AdaRoundProblem, options: Partial<AdaRoundOptions> = {}, onTrace?: (t: AdaRoundTrace) => void, signal?: AbortSignal): Promise<AdaRoundResult> {
  const o = { ...ADAROUND_DEFAULTS, ...options };
  const { layer, weight, inputs, targets, activation } = problem;
  const grid = gridOf(problem.params);
  const v = adaroundInit(weight, grid);
  const adam = new Adam(v.data, { lr: o.lr });
  const n = inputs.shape[0]!;
  const channels = targets.shape[1] ?? 1;
  const rand = rng(o.seed + 1);
  const trace: AdaRoundTrace[] = [];
  const every = Math.max(1, Math.floor(o.iters / 100));
  const pool = new BufferPool();
  const pace = cooperative(signal);
  for (let t = 0; t < o.iters; t++) {
    // let the worker (or Node) handle messages such as cancel, a few times a second
    await pace();
    // one iteration's activations and gradients come from the pool and go back to it
    const point = pool.run(() => iteration(t));
    pool.reclaim();
    if (t % every === 0 || t === o.iters - 1) {
      trace.push(point);
      onTrace?.(point);
    }
  }
  function iteration(t: number): AdaRoundTrace {
    const idx = Array.from({ length: Math.min(o.batch, n) }, () => Math.floor(rand() * n));
    const x = gatherRows(inputs, idx);
    const target = gatherRows(targets, idx);
    const wSoft = adaroundForward(weight, v, grid);
    const y = layer.forward(x, wSoft);
    // activation, loss and its gradient in one pass
    const scale = (2 * channels) / y.data.length;
    const dYbuf = scratch32(y.data.length);
    const [lo, hi] = activation === null ? [-Infinity, Infinity] : activation.kind === 'relu' ? [0, Infinity] : [activation.min, activation.max];
    const Y = y.data;
    const T = target.data;
    let rec = 0;
    for (let i = 0; i < Y.length; i++) {
      const v = Y[i]!;
      const inside = v > lo && v < hi;
      const d = (inside ? v : v <= lo ? lo : hi) - T[i]!;
      rec += d * d;
      dYbuf[i] = inside ? scale * d : 0;
    }
    rec = (rec * channels) / Y.length;
    const dY: Nd = { shape: y.shape, data: dYbuf };
    const dW = layer.weightGrad(x, wSoft, dY);
    const dV = adaroundBackward(weight, v, grid, dW);
    const beta = betaAt(t, o);
    let reg = 0;
    if (beta !== null) {
      const dR = adaroundRegBackward(v, beta, o.lambda);
      for (let i = 0; i < dV.data.length; i++) dV.data[i] = dV.data[i]! + dR.data[i]!;
      reg = o.lambda * adaroundRegForward(v, beta);
    }
    adam.step(dV.data);
    return { iter: t, rec, reg, beta };
  }
  return { codes: hardCodes(weight, v, grid), h: Float32Array.from(v.data, rectifiedSigmoid), trace };
}

/** Integer codes: floor(w/s) + 1[V ≥ 0] + z, clamped to the grid. */
export function hardCodes(w: Nd, v: Nd, g: QuantGrid): Int32Array {
  const codes = new Int32Array(w.data.length);
  gridRuns(w, g, 'hardCodes', (c, start, end) => {
    const s = g.scale[c]!;
    const z = g.zero[c]!;
    for (let i = start; i < end; i++) {
      const q = Math.floor(w.data[i]! / s) + (v.data[i]! >= 0 ? 1 : 0) + z;
      codes[i] = q < g.qmin ? g.qmin : q > g.qmax ? g.qmax : q;
    }
  });
  return codes;
}
