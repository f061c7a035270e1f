import type { Nd } from '../nd';

export type Nd64 = Nd<Float64Array>;
export type Inputs = Record<string, Nd64>;

/**
 * ∂L/∂input by central differences for L = Σ forward(inputs)·r, in float64. A random r checks every
 * output's contribution at once without forming the Jacobian. Inputs are perturbed in place and restored.
 */
export function numericGradient(forward: (ins: Inputs) => Nd64, ins: Inputs, name: string, r: Float64Array, eps = 1e-6): Float64Array {
  const t = ins[name];
  if (!t) throw new Error(`no input "${name}"`);
  const loss = (): number => {
    const y = forward(ins).data;
    let acc = 0;
    for (let i = 0; i < y.length; i++) acc += y[i]! * r[i]!;
    return acc;
  };
  const g = new Float64Array(t.data.length);
  for (let j = 0; j < t.data.length; j++) {
    const v = t.data[j]!;
    t.data[j] = v + eps;
    const up = loss();
    t.data[j] = v - eps;
    const down = loss();
    t.data[j] = v;
    g[j] = (up - down) / (2 * eps);
  }
  return g;
}

/** max |a − b| relative to max(1, max |b|): gradients near zero are compared absolutely. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
