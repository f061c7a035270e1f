import { describe, expect, it } from 'vitest';
import { roundHalfEven } from '../../../quant/quantizer';
import { randn, rng } from '../../../random';
import { size } from '../../../tensor/tensor';
import { adaroundBackward, adaroundForward, adaroundRegBackward, adaroundRegForward } from './adaround';
import { conv2dBackward, conv2dForward } from './conv2d';
import {
  addBackward,
  addForward,
  clipBackward,
  clipForward,
  hardSigmoidBackward,
  hardSigmoidForward,
  hardSwishBackward,
  hardSwishForward,
  leakyReluBackward,
  leakyReluForward,
  mulBackward,
  mulForward,
  reluBackward,
  reluForward,
  sigmoidBackward,
  sigmoidForward,
} from './elementwise';
import { fakeQuantBackward } from './fake-quant';
import { gemmBackward, gemmForward, matmulBackward, matmulForward } from './gemm';
import { lpLossBackward, lpLossForward, mseBackward, mseForward } from './losses';
import { nd, type Floats, type Nd } from './nd';
import {
  averagePoolBackward,
  averagePoolForward,
  globalAveragePoolBackward,
  globalAveragePoolForward,
  maxPoolBackward,
  maxPoolForward,
} from './pooling';
import { CONV_CONFIGS, POOL_CONFIGS } from './testing/configs';
import { numericGradient, relativeError, type Inputs, type Nd64 } from './testing/gradcheck';

/**
 * Every backward kernel against central finite differences of its forward kernel, all in float64.
 * Inputs are float32-representable, so the same case also checks that the float32 path gives the
 * float64 gradients up to rounding.
 */

type Ins<D extends Floats> = Record<string, Nd<D>>;

interface GradCase {
  name: string;
  inputs: Inputs;
  /** The inputs whose gradients are checked; the others are constants of the op. */
  wrt: string[];
  /** Differentiated numerically. */
  forward: (ins: Inputs) => Nd64;
  backward: <D extends Floats>(ins: Ins<D>, dy: Nd<D>) => Ins<D>;
}

const rand = rng(7);
/** Random float64 values that float32 holds exactly. */
const random = (shape: readonly number[], scale = 1): Nd64 => nd(shape, Float64Array.from(randn(size(shape), rand, scale)));
const exact = (shape: readonly number[], values: number[]): Nd64 => nd(shape, Float64Array.from(Float32Array.from(values)));
const get = <D extends Floats>(ins: Ins<D>, name: string): Nd<D> => {
  const t = ins[name];
  if (!t) throw new Error(`no input "${name}"`);
  return t;
};
const scalar = (v: number): Nd64 => nd([1], Float64Array.of(v));

function convCases(): GradCase[] {
  return CONV_CONFIGS.map((c) => ({
    name: `conv2d ${c.name}`,
    inputs: { x: random(c.x), w: random(c.w, 0.5), ...(c.bias ? { b: random([c.w[0]], 0.5) } : {}) },
    wrt: c.bias ? ['x', 'w', 'b'] : ['x', 'w'],
    forward: (ins) => conv2dForward(get(ins, 'x'), get(ins, 'w'), ins.b ?? null, c.attrs),
    backward: (ins, dy) => {
      const g = conv2dBackward(get(ins, 'x'), get(ins, 'w'), dy, c.attrs);
      return { x: g.dx, w: g.dw, b: g.db };
    },
  }));
}

function denseCases(): GradCase[] {
  return [
    {
      name: 'gemm',
      inputs: { x: random([3, 7]), w: random([5, 7], 0.5), b: random([5]) },
      wrt: ['x', 'w', 'b'],
      forward: (ins) => gemmForward(get(ins, 'x'), get(ins, 'w'), get(ins, 'b')),
      backward: (ins, dy) => {
        const g = gemmBackward(get(ins, 'x'), get(ins, 'w'), dy);
        return { x: g.dx, w: g.dw, b: g.db };
      },
    },
    {
      name: 'matmul 3-D × 2-D',
      inputs: { x: random([2, 3, 6]), w: random([6, 4], 0.5) },
      wrt: ['x', 'w'],
      forward: (ins) => matmulForward(get(ins, 'x'), get(ins, 'w')),
      backward: (ins, dy) => {
        const g = matmulBackward(get(ins, 'x'), get(ins, 'w'), dy);
        return { x: g.dx, w: g.dw };
      },
    },
  ];
}

function elementwiseCases(): GradCase[] {
  const shape = [2, 3, 4, 4];
  // scale 4 puts inputs on both sides of every kink (clip at 6, hardSwish at ±3); none lands within ε of one
  const unary = (name: string, f: (x: Nd64) => Nd64, df: <D extends Floats>(x: Nd<D>, dy: Nd<D>) => Nd<D>): GradCase => ({
    name,
    inputs: { x: random(shape, 4) },
    wrt: ['x'],
    forward: (ins) => f(get(ins, 'x')),
    backward: (ins, dy) => ({ x: df(get(ins, 'x'), dy) }),
  });
  return [
    unary('relu', reluForward, reluBackward),
    unary('clip [0, 6]', (x) => clipForward(x, 0, 6), (x, dy) => clipBackward(x, dy, 0, 6)),
    unary('clip [-1, 2]', (x) => clipForward(x, -1, 2), (x, dy) => clipBackward(x, dy, -1, 2)),
    unary('leakyRelu α = 0.1', (x) => leakyReluForward(x, 0.1), (x, dy) => leakyReluBackward(x, dy, 0.1)),
    unary('sigmoid', sigmoidForward, sigmoidBackward),
    unary('hardSigmoid α = 0.2, β = 0.5', (x) => hardSigmoidForward(x, 0.2, 0.5), (x, dy) => hardSigmoidBackward(x, dy, 0.2, 0.5)),
    unary('hardSwish', hardSwishForward, hardSwishBackward),
    {
      name: 'add',
      inputs: { a: random(shape), b: random(shape) },
      wrt: ['a', 'b'],
      forward: (ins) => addForward(get(ins, 'a'), get(ins, 'b')),
      backward: (_, dy) => {
        const g = addBackward(dy);
        return { a: g.da, b: g.db };
      },
    },
    {
      name: 'mul, same shape',
      inputs: { a: random(shape), b: random(shape) },
      wrt: ['a', 'b'],
      forward: (ins) => mulForward(get(ins, 'a'), get(ins, 'b')),
      backward: (ins, dy) => {
        const g = mulBackward(get(ins, 'a'), get(ins, 'b'), dy);
        return { a: g.da, b: g.db };
      },
    },
    {
      name: 'mul, [N, C, 1, 1] gate',
      inputs: { a: random(shape), b: random([2, 3, 1, 1]) },
      wrt: ['a', 'b'],
      forward: (ins) => mulForward(get(ins, 'a'), get(ins, 'b')),
      backward: (ins, dy) => {
        const g = mulBackward(get(ins, 'a'), get(ins, 'b'), dy);
        return { a: g.da, b: g.db };
      },
    },
  ];
}

function poolCases(): GradCase[] {
  return [
    {
      name: 'globalAveragePool',
      inputs: { x: random([2, 3, 5, 6]) },
      wrt: ['x'],
      forward: (ins) => globalAveragePoolForward(get(ins, 'x')),
      backward: (ins, dy) => ({ x: globalAveragePoolBackward(get(ins, 'x'), dy) }),
    },
    ...POOL_CONFIGS.flatMap((c): GradCase[] => [
      {
        name: `averagePool ${c.name}`,
        inputs: { x: random(c.x) },
        wrt: ['x'],
        forward: (ins) => averagePoolForward(get(ins, 'x'), c.attrs),
        backward: (ins, dy) => ({ x: averagePoolBackward(get(ins, 'x'), dy, c.attrs) }),
      },
      ...(c.attrs.countIncludePad
        ? []
        : [
            {
              name: `maxPool ${c.name}`,
              inputs: { x: random(c.x) },
              wrt: ['x'],
              forward: (ins: Inputs) => maxPoolForward(get(ins, 'x'), c.attrs),
              backward: <D extends Floats>(ins: Ins<D>, dy: Nd<D>) => ({ x: maxPoolBackward(get(ins, 'x'), dy, c.attrs) }),
            },
          ]),
    ]),
  ];
}

function lossCases(): GradCase[] {
  const shape = [2, 3, 4, 4];
  return [
    {
      name: 'mse',
      inputs: { p: random(shape), t: random(shape) },
      wrt: ['p'],
      forward: (ins) => scalar(mseForward(get(ins, 'p'), get(ins, 't'))),
      backward: (ins, dy) => ({ p: mseBackward(get(ins, 'p'), get(ins, 't'), dy.data[0]) }),
    },
    {
      name: 'lp loss p = 2.4',
      inputs: { p: random(shape), t: random(shape) },
      wrt: ['p'],
      forward: (ins) => scalar(lpLossForward(get(ins, 'p'), get(ins, 't'), 2.4)),
      backward: (ins, dy) => ({ p: lpLossBackward(get(ins, 'p'), get(ins, 't'), 2.4, dy.data[0]) }),
    },
  ];
}

/**
 * The STE gradient is not the derivative of fake quantization (which is 0 almost everywhere) but of
 * its surrogate with the rounding residual δ = round(x/s) − x/s and the clamp decision frozen at
 * the point of evaluation: x̂ = s·(x/s + δ) inside the grid, s·(q_clamped − z) outside. That
 * surrogate, written out here independently of the kernel, is what the finite differences see.
 */
function fakeQuantCase(name: string, x: Nd64, scale: number[], zero: number[], qmin: number, qmax: number): GradCase {
  const s0 = Float32Array.from(scale);
  const run = x.data.length / scale.length;
  const delta = new Float64Array(x.data.length);
  const clamped = new Float64Array(x.data.length).fill(NaN); // NaN marks "inside the grid"
  x.data.forEach((v, i) => {
    const c = Math.floor(i / run);
    const u = v / s0[c]!;
    const r = roundHalfEven(u);
    const q = r + zero[c]!;
    delta[i] = r - u;
    if (q < qmin) clamped[i] = qmin;
    if (q > qmax) clamped[i] = qmax;
  });
  const outside = clamped.filter((v) => !Number.isNaN(v)).length;
  if (outside === 0 || outside === x.data.length) throw new Error(`${name}: choose data that is partly clipped`);
  return {
    name,
    inputs: { x, s: nd([scale.length], Float64Array.from(s0)) },
    wrt: ['x', 's'],
    forward: (ins) => {
      const X = get(ins, 'x').data;
      const S = get(ins, 's').data;
      const y = new Float64Array(X.length);
      for (let i = 0; i < X.length; i++) {
        const c = Math.floor(i / run);
        const s = S[c]!;
        y[i] = Number.isNaN(clamped[i]!) ? s * (X[i]! / s + delta[i]!) : s * (clamped[i]! - zero[c]!);
      }
      return nd(x.shape, y);
    },
    backward: (ins, dy) => {
      const s = get(ins, 's');
      const g = fakeQuantBackward(get(ins, 'x'), { scale: s.data, zero, qmin, qmax }, dy);
      return { x: g.dx, s: nd(s.shape, g.dscale) };
    },
  };
}

function adaroundCase(name: string, w: Nd64, scale: number[], zero: number[], qmin: number, qmax: number): GradCase {
  const grid = <D extends Floats>(ins: Ins<D>) => ({ scale: get(ins, 's').data, zero, qmin, qmax });
  return {
    name,
    // |V| up to ~6 reaches the flat parts of h, where the gradient must vanish
    inputs: { w, v: random(w.shape, 2), s: exact([scale.length], scale) },
    wrt: ['v'],
    forward: (ins) => adaroundForward(get(ins, 'w'), get(ins, 'v'), grid(ins)),
    backward: (ins, dy) => ({ v: adaroundBackward(get(ins, 'w'), get(ins, 'v'), grid(ins), dy) }),
  };
}

function quantCases(): GradCase[] {
  const regularizer = (beta: number): GradCase => ({
    name: `AdaRound regulariser β = ${beta}`,
    inputs: { v: random([4, 3, 3, 3], 2) },
    wrt: ['v'],
    forward: (ins) => scalar(adaroundRegForward(get(ins, 'v'), beta)),
    backward: (ins, dy) => ({ v: adaroundRegBackward(get(ins, 'v'), beta, dy.data[0]) }),
  });
  return [
    fakeQuantCase('fakeQuant per tensor (4-bit unsigned): STE dx and LSQ dscale', random([2, 3, 4, 4], 1.5), [0.35], [7], 0, 15),
    fakeQuantCase('fakeQuant per channel (4-bit signed): STE dx and LSQ dscale', random([4, 2, 3, 3]), [0.2, 0.3, 0.25, 0.15], [0, 1, -1, 2], -8, 7),
    adaroundCase('AdaRound V gradient, per tensor (3-bit)', random([3, 4]), [0.25], [2], 0, 7),
    adaroundCase('AdaRound V gradient, per channel (4-bit)', random([4, 2, 3, 3], 0.8), [0.1, 0.2, 0.15, 0.3], [8, 8, 7, 9], 0, 15),
    regularizer(2),
    regularizer(8),
    regularizer(20),
  ];
}

const CASES: GradCase[] = [...convCases(), ...denseCases(), ...elementwiseCases(), ...poolCases(), ...lossCases(), ...quantCases()];

const toFloat32 = (t: Nd64): Nd<Float32Array> => nd(t.shape, Float32Array.from(t.data));

describe('reference backward kernels match finite differences', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_, c) => {
    const y = c.forward(c.inputs);
    const dy = random(y.shape);
    const analytic = c.backward(c.inputs, dy);
    for (const name of c.wrt) {
      const numeric = numericGradient(c.forward, c.inputs, name, dy.data);
      const g = get(analytic, name);
      expect(g.shape, name).toEqual(get(c.inputs, name).shape);
      expect(relativeError(g.data, numeric), `d${name}`).toBeLessThan(1e-7);
      // a gradient that is all zeros would pass trivially against a wrong forward
      expect(numeric.some((v) => v !== 0), `d${name} is not identically zero`).toBe(true);
    }
    const ins32 = Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, toFloat32(v)]));
    const analytic32 = c.backward(ins32, toFloat32(dy));
    for (const name of c.wrt) {
      const g32 = get(analytic32, name);
      expect(g32.data).toBeInstanceOf(Float32Array);
      expect(relativeError(g32.data, get(analytic, name).data), `float32 d${name}`).toBeLessThan(1e-6);
    }
  });
});
