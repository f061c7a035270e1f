import type { Activation } from '../types';
import type { MapSpec, ReduceSpec } from '../skeletons';
import { ACT_PARAMS, ADAROUND, DIV, GRID_PARAMS, SIGMOID, activationWgsl, prelude } from '../wgsl';

/*
 * Element-wise kernels: activations, the residual add and the gate multiply (reference/
 * elementwise.ts), fake quantization and AdaRound (fake-quant.ts, adaround.ts), global average
 * pooling (pooling.ts), the reconstruction losses (losses.ts) and Adam (optim/adam.ts). Fusions:
 * act(a + b) forward and backward, act inside the loss, the regulariser's gradient added to the
 * reconstruction gradient, each fake-quant and loss gradient computed in the pass that reduces.
 */

const cache = new Map<string, MapSpec | ReduceSpec>();
function memo<S extends MapSpec | ReduceSpec>(key: string, make: () => S): S {
  let s = cache.get(key);
  if (!s) cache.set(key, (s = make()));
  return s as S;
}

export const activationForwardSpec = (a: Activation): MapSpec =>
  memo(`act${a.kind}`, () => ({
    label: `${a.kind} forward`,
    params: ACT_PARAMS,
    bindings: [{ name: 'X', access: 'read' }, { name: 'Y', access: 'read_write' }],
    prelude: prelude(activationWgsl(a)),
    body: '    Y[i] = act(X[i]);',
  }));

export const activationBackwardSpec = (a: Activation): MapSpec =>
  memo(`dact${a.kind}`, () => ({
    label: `${a.kind} backward`,
    params: ACT_PARAMS,
    bindings: [{ name: 'X', access: 'read' }, { name: 'DY', access: 'read' }, { name: 'DX', access: 'read_write' }],
    prelude: prelude(activationWgsl(a)),
    body: '    DX[i] = DY[i] * dact(X[i]);',
  }));

export const addForwardSpec = (a: Activation): MapSpec =>
  memo(`add${a.kind}`, () => ({
    label: `add → ${a.kind}`,
    params: ACT_PARAMS,
    bindings: [{ name: 'A', access: 'read' }, { name: 'B', access: 'read' }, { name: 'Y', access: 'read_write' }],
    prelude: prelude(activationWgsl(a)),
    body: '    Y[i] = act(A[i] + B[i]);',
  }));

export const addBackwardSpec = (a: Activation): MapSpec =>
  memo(`dadd${a.kind}`, () => ({
    label: `add → ${a.kind} backward`,
    params: ACT_PARAMS,
    bindings: [{ name: 'A', access: 'read' }, { name: 'B', access: 'read' }, { name: 'DY', access: 'read' }, { name: 'DA', access: 'read_write' }],
    prelude: prelude(activationWgsl(a)),
    body: '    DA[i] = DY[i] * dact(A[i] + B[i]);',
  }));

/** a·b with b[i / run]: the same shape (run = 1) or a gate broadcast over trailing axes. */
export const MUL_FORWARD: MapSpec = {
  label: 'mul forward',
  params: { run: 'u32' },
  bindings: [{ name: 'A', access: 'read' }, { name: 'B', access: 'read' }, { name: 'Y', access: 'read_write' }],
  prelude: '',
  body: '    Y[i] = A[i] * B[i / p.run];',
};

/** da = dy·b (side output); db[c] = Σ over c's run of dy·a. */
export const MUL_BACKWARD: ReduceSpec = {
  label: 'mul backward',
  params: {},
  bindings: [{ name: 'A', access: 'read' }, { name: 'B', access: 'read' }, { name: 'DY', access: 'read' }, { name: 'DA', access: 'read_write' }],
  prelude: '',
  elem: `  let i = c * p.count + j;
  let d = DY[i];
  DA[i] = d * B[c];
  return d * A[i];`,
};

// ---------------------------------------------------------------------------------------------
// quantization

const QUANT_PRELUDE = prelude(SIGMOID, DIV, ADAROUND);

/** x̂ = s·(clamp(round(x/s) + z, qmin, qmax) − z); WGSL's round() is half to even, as ONNX's. */
export const FAKE_QUANT_FORWARD: MapSpec = {
  label: 'fake quant forward',
  params: GRID_PARAMS,
  bindings: [{ name: 'X', access: 'read' }, { name: 'Scale', access: 'read' }, { name: 'Zero', access: 'read' }, { name: 'Y', access: 'read_write' }],
  prelude: DIV,
  body: `    let c = i / p.qrun;
    let s = Scale[c];
    let z = Zero[c];
    let q = round(divq(X[i], s)) + z;
    Y[i] = s * (clamp(q, p.qmin, p.qmax) - z);`,
};

/** STE into DX (side output), LSQ's ∂x̂/∂s summed per scale. */
export const FAKE_QUANT_BACKWARD: ReduceSpec = {
  label: 'fake quant backward',
  params: { qmin: 'f32', qmax: 'f32', gradScale: 'f32' },
  bindings: [{ name: 'X', access: 'read' }, { name: 'Scale', access: 'read' }, { name: 'Zero', access: 'read' }, { name: 'DY', access: 'read' }, { name: 'DX', access: 'read_write' }],
  prelude: DIV,
  elem: `  let i = c * p.count + j;
  let s = Scale[c];
  let z = Zero[c];
  let u = divq(X[i], s);
  let r = round(u);
  let q = r + z;
  let d = DY[i];
  if (q < p.qmin) { DX[i] = 0.0; return d * (p.qmin - z); }
  if (q > p.qmax) { DX[i] = 0.0; return d * (p.qmax - z); }
  DX[i] = d;
  return d * (r - u);`,
  finish: '  return v * p.gradScale;',
};

const GRID_BINDINGS = [{ name: 'Wt', access: 'read' }, { name: 'V', access: 'read' }, { name: 'Scale', access: 'read' }, { name: 'Zero', access: 'read' }] as const;

export const ADAROUND_FORWARD: MapSpec = {
  label: 'adaround soft weight',
  params: GRID_PARAMS,
  bindings: [...GRID_BINDINGS, { name: 'Y', access: 'read_write' }],
  prelude: QUANT_PRELUDE,
  body: `    let c = i / p.qrun;
    Y[i] = softW(Wt[i], V[i], Scale[c], Zero[c]);`,
};

export const ADAROUND_HARD: MapSpec = {
  label: 'adaround hard weight',
  params: GRID_PARAMS,
  bindings: [...GRID_BINDINGS, { name: 'Y', access: 'read_write' }],
  prelude: DIV,
  body: `    let c = i / p.qrun;
    let s = Scale[c];
    let z = Zero[c];
    let q = floor(divq(Wt[i], s)) + select(0.0, 1.0, V[i] >= 0.0) + z;
    Y[i] = s * (clamp(q, p.qmin, p.qmax) - z);`,
};

export const ADAROUND_BACKWARD: MapSpec = {
  label: 'adaround backward',
  params: GRID_PARAMS,
  bindings: [...GRID_BINDINGS, { name: 'DY', access: 'read' }, { name: 'DV', access: 'read_write' }],
  prelude: QUANT_PRELUDE,
  body: `    let c = i / p.qrun;
    DV[i] = DY[i] * softWGrad(Wt[i], V[i], Scale[c], Zero[c]);`,
};

/** |t|^β with 0^β = 0 (WGSL's pow is undefined at 0). */
const POW0 = /* wgsl */ `
fn pow0(a: f32, e: f32) -> f32 { return select(pow(a, e), 0.0, a == 0.0); }`;

export const ADAROUND_REG_FORWARD: ReduceSpec = {
  label: 'adaround regulariser',
  params: { beta: 'f32', qmin: 'f32', qmax: 'f32' },
  bindings: [{ name: 'V', access: 'read' }],
  prelude: prelude(QUANT_PRELUDE, POW0),
  elem: '  return 1.0 - pow0(abs(2.0 * hV(V[j]) - 1.0), p.beta);',
};

export const ADAROUND_REG_BACKWARD: MapSpec = {
  label: 'adaround regulariser backward',
  params: { beta: 'f32', dLoss: 'f32', hasAdd: 'u32', qmin: 'f32', qmax: 'f32' },
  bindings: [{ name: 'V', access: 'read' }, { name: 'Add', access: 'read' }, { name: 'DV', access: 'read_write' }],
  prelude: prelude(QUANT_PRELUDE, POW0),
  body: `    let v = V[i];
    let t = 2.0 * hV(v) - 1.0;
    // d/dh (1 − |2h − 1|^β) = −2β·|t|^(β−1)·sign(t)
    let dh = -2.0 * p.beta * pow0(abs(t), p.beta - 1.0) * sign(t);
    var g = p.dLoss * dh * dhV(v);
    if (p.hasAdd != 0u) { g += Add[i]; }
    DV[i] = g;`,
};

// ---------------------------------------------------------------------------------------------
// pooling

export const GAP_FORWARD: ReduceSpec = {
  label: 'global average pool',
  params: {},
  bindings: [{ name: 'X', access: 'read' }],
  prelude: '',
  elem: '  return X[c * p.count + j];',
  finish: '  return v / f32(p.count);',
};

export const GAP_BACKWARD: MapSpec = {
  label: 'global average pool backward',
  params: { plane: 'u32' },
  bindings: [{ name: 'DY', access: 'read' }, { name: 'DX', access: 'read_write' }],
  prelude: '',
  body: '    DX[i] = DY[i / p.plane] / f32(p.plane);',
};

// ---------------------------------------------------------------------------------------------
// losses: mean of |act(pred) − target|^p; the gradient (w.r.t. pred) written in the same pass

export const LOSS_PARAMS = { ...ACT_PARAMS, pw: 'f32', gscale: 'f32', invN: 'f32', writeGrad: 'u32' } as const;

/** e → |e|^p and its derivative p·|e|^(p−1)·sign(e) without p (folded into gscale); p = 2 exact. */
function lossTerms(kind: 'mse' | 'lp'): string {
  return kind === 'mse'
    ? `
fn lossTerm(e: f32) -> f32 { return e * e; }
fn lossSlope(e: f32) -> f32 { return e; }`
    : `${POW0}
fn lossTerm(e: f32) -> f32 { return pow0(abs(e), p.pw); }
fn lossSlope(e: f32) -> f32 { return pow0(abs(e), p.pw - 1.0) * sign(e); }`;
}

export const lossSpec = (kind: 'mse' | 'lp', a: Activation): ReduceSpec =>
  memo(`loss${kind}${a.kind}`, () => ({
    label: `${kind} loss${a.kind === 'identity' ? '' : ` after ${a.kind}`}`,
    params: LOSS_PARAMS,
    bindings: [{ name: 'P', access: 'read' }, { name: 'T', access: 'read' }, { name: 'G', access: 'read_write' }],
    prelude: prelude(activationWgsl(a), lossTerms(kind)),
    elem: `  let x = P[j];
  let e = act(x) - T[j];
  if (p.writeGrad != 0u) { G[j] = p.gscale * lossSlope(e) * dact(x); }
  return lossTerm(e);`,
    finish: '  return v * p.invN;',
  }));

export const lossGradSpec = (kind: 'mse' | 'lp', a: Activation): MapSpec =>
  memo(`dloss${kind}${a.kind}`, () => ({
    label: `${kind} loss gradient${a.kind === 'identity' ? '' : ` after ${a.kind}`}`,
    params: LOSS_PARAMS,
    bindings: [{ name: 'P', access: 'read' }, { name: 'T', access: 'read' }, { name: 'G', access: 'read_write' }],
    prelude: prelude(activationWgsl(a), lossTerms(kind)),
    body: `    let x = P[i];
    G[i] = p.gscale * lossSlope(act(x) - T[i]) * dact(x);`,
  }));

// ---------------------------------------------------------------------------------------------
// Adam, in place

export const ADAM_STEP: MapSpec = {
  label: 'adam step',
  params: { lr: 'f32', b1: 'f32', b2: 'f32', eps: 'f32', c1: 'f32', c2: 'f32' },
  bindings: [{ name: 'Grad', access: 'read' }, { name: 'Param', access: 'read_write' }, { name: 'Mo', access: 'read_write' }, { name: 'Vo', access: 'read_write' }],
  prelude: '',
  body: `    let g = Grad[i];
    let m = p.b1 * Mo[i] + (1.0 - p.b1) * g;
    let v = p.b2 * Vo[i] + (1.0 - p.b2) * g * g;
    Mo[i] = m;
    Vo[i] = v;
    Param[i] = Param[i] - (p.lr * (m / p.c1)) / (sqrt(v / p.c2) + p.eps);`,
};
