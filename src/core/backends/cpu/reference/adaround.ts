import { sigmoid } from './elementwise';
import { alloc, assertSameShape, type Floats, type Nd } from './nd';
import { gridRuns, type QuantGrid } from './quant-grid';

/*
 * AdaRound (algorithms.md §2.1–2.2): each weight keeps floor(w/s) and learns whether to round up
 * through a continuous V. The rectified sigmoid h(V) = clamp(σ(V)(ζ − γ) + γ, 0, 1) stretches σ past
 * [0, 1] so that h reaches 0 and 1 exactly while its gradient is still non-zero inside.
 */
export const ZETA = 1.1;
export const GAMMA = -0.1;

export function rectifiedSigmoid(v: number): number {
  const h = sigmoid(v) * (ZETA - GAMMA) + GAMMA;
  return h < 0 ? 0 : h > 1 ? 1 : h;
}

/** dh/dV; zero where h is clamped (boundaries count as inside, as torch.clamp's gradient does). */
export function rectifiedSigmoidGrad(v: number): number {
  const s = sigmoid(v);
  const h = s * (ZETA - GAMMA) + GAMMA;
  return h < 0 || h > 1 ? 0 : (ZETA - GAMMA) * s * (1 - s);
}

/** ŵ = s·clamp(floor(w/s) + r + z, qmin, qmax) − s·z for a rounding offset r ∈ [0, 1] per weight. */
function roundWith<D extends Floats>(w: Nd<D>, g: QuantGrid<D>, offset: (i: number) => number, op: string): Nd<D> {
  const W = w.data;
  const y = alloc(W, W.length);
  gridRuns(w, g, op, (c, start, end) => {
    const s = g.scale[c]!;
    const z = g.zero[c]!;
    for (let i = start; i < end; i++) {
      const q = Math.floor(W[i]! / s) + offset(i) + z;
      y[i] = s * ((q < g.qmin ? g.qmin : q > g.qmax ? g.qmax : q) - z);
    }
  });
  return { shape: [...w.shape], data: y };
}

/** The soft-quantized weight the reconstruction loss sees. */
export function adaroundForward<D extends Floats>(w: Nd<D>, v: Nd<D>, g: QuantGrid<D>): Nd<D> {
  assertSameShape(w, v, 'adaround');
  const V = v.data;
  return roundWith(w, g, (i) => rectifiedSigmoid(V[i]!), 'adaround');
}

/** The final weight: round up exactly where V ≥ 0, i.e. where h(V) ≥ 0.5. */
export function adaroundHard<D extends Floats>(w: Nd<D>, v: Nd<D>, g: QuantGrid<D>): Nd<D> {
  assertSameShape(w, v, 'adaround');
  const V = v.data;
  return roundWith(w, g, (i) => (V[i]! >= 0 ? 1 : 0), 'adaround');
}

/** ∂L/∂V = dy·s·h′(V) where the code stays inside [qmin, qmax], 0 where it is clamped. w and s get no gradient: AdaRound learns V only. */
export function adaroundBackward<D extends Floats>(w: Nd<D>, v: Nd<D>, g: QuantGrid<D>, dy: Nd<D>): Nd<D> {
  assertSameShape(w, v, 'adaround');
  assertSameShape(w, dy, 'adaround');
  const W = w.data;
  const V = v.data;
  const DY = dy.data;
  const dv = alloc(W, W.length);
  gridRuns(w, g, 'adaround', (c, start, end) => {
    const s = g.scale[c]!;
    const z = g.zero[c]!;
    for (let i = start; i < end; i++) {
      const q = Math.floor(W[i]! / s) + rectifiedSigmoid(V[i]!) + z;
      if (q >= g.qmin && q <= g.qmax) dv[i] = DY[i]! * s * rectifiedSigmoidGrad(V[i]!);
    }
  });
  return { shape: [...w.shape], data: dv };
}

/** V with h(V) = w/s − floor(w/s), so that the soft weight starts equal to w (up to clipping). */
export function adaroundInit<D extends Floats>(w: Nd<D>, g: QuantGrid<D>): Nd<D> {
  const W = w.data;
  const v = alloc(W, W.length);
  gridRuns(w, g, 'adaround', (c, start, end) => {
    const s = g.scale[c]!;
    for (let i = start; i < end; i++) {
      const u = W[i]! / s;
      const r = u - Math.floor(u);
      v[i] = -Math.log((ZETA - GAMMA) / (r - GAMMA) - 1);
    }
  });
  return { shape: [...w.shape], data: v };
}

/** f_reg = Σ 1 − |2h(V) − 1|^β: a sum over all weights, not a mean (§2.2; λ depends on it). */
export function adaroundRegForward(v: Nd<Floats>, beta: number): number {
  const V = v.data;
  let acc = 0;
  for (let i = 0; i < V.length; i++) acc += 1 - Math.abs(2 * rectifiedSigmoid(V[i]!) - 1) ** beta;
  return acc;
}

/** ∂(dLoss·f_reg)/∂V; pass λ as `dLoss` to get the regulariser term's gradient directly. */
export function adaroundRegBackward<D extends Floats>(v: Nd<D>, beta: number, dLoss = 1): Nd<D> {
  const V = v.data;
  const dv = alloc(V, V.length);
  for (let i = 0; i < V.length; i++) {
    const t = 2 * rectifiedSigmoid(V[i]!) - 1;
    const a = Math.abs(t);
    // d/dh (1 − |2h − 1|^β) = −2β·|t|^(β−1)·sign(t); |t|^(β−1) is 0 at t = 0 for β > 1
    const dh = a === 0 ? 0 : -2 * beta * a ** (beta - 1) * Math.sign(t);
    dv[i] = dLoss * dh * rectifiedSigmoidGrad(V[i]!);
  }
  return { shape: [...v.shape], data: dv };
}
