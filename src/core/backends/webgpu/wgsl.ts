import type { Activation } from './types';
import type { ParamFields } from './runtime';

/*
 * WGSL snippets shared by the kernels. Each mirrors a CPU reference function and says which one;
 * the kinks and clamps are the reference's (PyTorch's), so the two backends agree at the edges.
 */

/** reference/elementwise.ts `sigmoid`: exp never overflows. */
export const SIGMOID = /* wgsl */ `
fn sigm(v: f32) -> f32 {
  if (v >= 0.0) { return 1.0 / (1.0 + exp(-v)); }
  let e = exp(v);
  return e / (1.0 + e);
}`;

/**
 * a / b, then one correction step: WGSL's f32 division may be off by 2.5 ulp, and the quantizers
 * floor or round its result, so a code could flip next to a grid boundary. Where fma is fused the
 * correction recovers the correctly rounded quotient; elsewhere it is harmless.
 */
export const DIV = /* wgsl */ `
fn divq(a: f32, b: f32) -> f32 {
  let q = a / b;
  return q + fma(-q, b, a) / b;
}`;

/** The quantization grid's parameters, shared by fake quantization and AdaRound. */
export const GRID_PARAMS = { qrun: 'u32', qmin: 'f32', qmax: 'f32' } as const satisfies ParamFields;

/**
 * reference/adaround.ts: the rectified sigmoid h(V), its derivative (zero where h is clamped,
 * boundaries inside), the soft weight and its backward factor. Needs SIGMOID, DIV, GRID_PARAMS.
 */
export const ADAROUND = /* wgsl */ `
const ZETA: f32 = 1.1;
const GAMMA: f32 = -0.1;
fn hV(v: f32) -> f32 { return clamp(sigm(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0); }
fn dhV(v: f32) -> f32 {
  let s = sigm(v);
  let h = s * (ZETA - GAMMA) + GAMMA;
  if (h < 0.0 || h > 1.0) { return 0.0; }
  return (ZETA - GAMMA) * s * (1.0 - s);
}
// w_soft = s·(clamp(floor(w/s) + h(V) + z, qmin, qmax) − z)
fn softW(w: f32, v: f32, s: f32, z: f32) -> f32 {
  let q = floor(divq(w, s)) + hV(v) + z;
  return s * (clamp(q, p.qmin, p.qmax) - z);
}
// ∂w_soft/∂V = s·h'(V) where the code stays inside [qmin, qmax]
fn softWGrad(w: f32, v: f32, s: f32, z: f32) -> f32 {
  let q = floor(divq(w, s)) + hV(v) + z;
  if (q < p.qmin || q > p.qmax) { return 0.0; }
  return s * dhV(v);
}`;

/** Uniform constants an activation reads: a0, a1 (clip bounds, leaky slope, hard-sigmoid α and β). */
export const ACT_PARAMS = { a0: 'f32', a1: 'f32' } as const satisfies ParamFields;

export function activationParams(a: Activation): { a0: number; a1: number } {
  switch (a.kind) {
    case 'clip':
      return { a0: a.min, a1: a.max };
    case 'leakyRelu':
      return { a0: a.alpha, a1: 0 };
    case 'hardSigmoid':
      return { a0: a.alpha, a1: a.beta };
    default:
      return { a0: 0, a1: 0 };
  }
}

/**
 * `act(v)` and `dact(v)` (f′ at the forward input), reference/elementwise.ts op for op. The kind is
 * compiled in (a handful of variants); the constants are parameters, so a new slope or clip range
 * does not compile a new pipeline.
 */
export function activationWgsl(a: Activation): string[] {
  const body: Record<Activation['kind'], [string, string]> = {
    identity: ['return v;', 'return 1.0;'],
    relu: ['return select(0.0, v, v > 0.0);', 'return select(0.0, 1.0, v > 0.0);'],
    clip: ['return select(select(v, p.a1, v > p.a1), p.a0, v < p.a0);', 'return select(0.0, 1.0, v > p.a0 && v < p.a1);'],
    leakyRelu: ['return select(p.a0 * v, v, v > 0.0);', 'return select(p.a0, 1.0, v > 0.0);'],
    sigmoid: ['return sigm(v);', 'let s = sigm(v); return s * (1.0 - s);'],
    hardSigmoid: ['return max(0.0, min(1.0, p.a0 * v + p.a1));', 'let u = p.a0 * v + p.a1; return select(0.0, p.a0, u > 0.0 && u < 1.0);'],
    hardSwish: [
      'if (v <= -3.0) { return 0.0; } if (v >= 3.0) { return v; } return v * (v + 3.0) / 6.0;',
      'if (v < -3.0) { return 0.0; } if (v <= 3.0) { return (2.0 * v + 3.0) / 6.0; } return 1.0;',
    ],
  };
  const [f, df] = body[a.kind];
  const fns = `
fn act(v: f32) -> f32 { ${f} }
fn dact(v: f32) -> f32 { ${df} }`;
  return a.kind === 'sigmoid' ? [SIGMOID, fns] : [fns];
}

/** Joins snippets, each once: kernels compose them and several need the same helper. */
export function prelude(...parts: readonly (string | readonly string[])[]): string {
  return [...new Set(parts.flat())].join('\n');
}
