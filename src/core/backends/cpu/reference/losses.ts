import { alloc, assertSameShape, type Floats, type Nd } from './nd';

/*
 * Reconstruction losses, reduced by the mean over every element. BRECQ's lp_loss with
 * reduction='none' (its default for reconstruction) sums over axis 1 before the mean: that is this
 * mean times shape[1], which the caller applies when it reproduces that normalisation (§2.2).
 * Losses are returned as float64 numbers; gradients take the upstream scalar `dLoss`.
 */

export function mseForward(pred: Nd<Floats>, target: Nd<Floats>): number {
  return lpLossForward(pred, target, 2);
}

export function mseBackward<D extends Floats>(pred: Nd<D>, target: Nd<D>, dLoss = 1): Nd<D> {
  assertSameShape(pred, target, 'mse');
  const P = pred.data;
  const T = target.data;
  const k = (2 * dLoss) / P.length;
  const d = alloc(P, P.length);
  for (let i = 0; i < P.length; i++) d[i] = k * (P[i]! - T[i]!);
  return { shape: [...pred.shape], data: d };
}

/** mean |pred − target|^p; p = 2.4 is the LAPQ/BRECQ choice for step-size search and reconstruction. */
export function lpLossForward(pred: Nd<Floats>, target: Nd<Floats>, p = 2.4): number {
  assertSameShape(pred, target, 'lpLoss');
  const P = pred.data;
  const T = target.data;
  let acc = 0;
  for (let i = 0; i < P.length; i++) acc += Math.abs(P[i]! - T[i]!) ** p;
  return acc / P.length;
}

export function lpLossBackward<D extends Floats>(pred: Nd<D>, target: Nd<D>, p = 2.4, dLoss = 1): Nd<D> {
  assertSameShape(pred, target, 'lpLoss');
  const P = pred.data;
  const T = target.data;
  const k = (p * dLoss) / P.length;
  const d = alloc(P, P.length);
  for (let i = 0; i < P.length; i++) {
    const e = P[i]! - T[i]!;
    // p·|e|^(p−1)·sign(e); written with e itself so that e = 0 gives 0 for any p > 1
    d[i] = e === 0 ? 0 : k * Math.abs(e) ** (p - 1) * Math.sign(e);
  }
  return { shape: [...pred.shape], data: d };
}
