import { Adam } from '../../optim/adam';
import * as R from '../cpu/reference';
import type { Conv2dAttrs, Floats, Nd, QuantGrid } from '../cpu/reference';
import { IDENTITY, type Activation, type AdamHyper, type AdamState, type ConvGrads, type ConvOptions, type GridOf, type KernelBackend, type LinearGrads, type MatmulOptions } from './types';

/*
 * The CPU reference kernels behind `KernelBackend`: the same program runs on either backend, and
 * the WebGPU parity page checks the two against each other. Tensors are `Nd`s of the element type
 * the backend was made for; float64 makes it the oracle (every sum exact to ~1e-16).
 */

function act<D extends Floats>(x: Nd<D>, a: Activation): Nd<D> {
  switch (a.kind) {
    case 'identity':
      return R.copy(x);
    case 'relu':
      return R.reluForward(x);
    case 'clip':
      return R.clipForward(x, a.min, a.max);
    case 'leakyRelu':
      return R.leakyReluForward(x, a.alpha);
    case 'sigmoid':
      return R.sigmoidForward(x);
    case 'hardSigmoid':
      return R.hardSigmoidForward(x, a.alpha, a.beta);
    case 'hardSwish':
      return R.hardSwishForward(x);
  }
}

function dact<D extends Floats>(x: Nd<D>, dy: Nd<D>, a: Activation): Nd<D> {
  switch (a.kind) {
    case 'identity':
      return R.copy(dy);
    case 'relu':
      return R.reluBackward(x, dy);
    case 'clip':
      return R.clipBackward(x, dy, a.min, a.max);
    case 'leakyRelu':
      return R.leakyReluBackward(x, dy, a.alpha);
    case 'sigmoid':
      return R.sigmoidBackward(x, dy);
    case 'hardSigmoid':
      return R.hardSigmoidBackward(x, dy, a.alpha, a.beta);
    case 'hardSwish':
      return R.hardSwishBackward(x, dy);
  }
}

function transpose<D extends Floats>(t: Nd<D>): Nd<D> {
  const [r, c] = t.shape as [number, number];
  const out = R.alloc(t.data, t.data.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], data: out };
}

export class ReferenceBackend<D extends Floats = Float32Array> implements KernelBackend<Nd<D>> {
  readonly name: string;
  private readonly adams = new WeakMap<Nd<D>, Adam>();

  constructor(private readonly like: D) {
    this.name = like instanceof Float64Array ? 'cpu-reference-f64' : 'cpu-reference';
  }

  private of(data: ArrayLike<number>): D {
    const out = R.alloc(this.like, data.length);
    out.set(data);
    return out;
  }

  private soft(w: Nd<D>, o: ConvOptions<Nd<D>> | undefined): Nd<D> {
    return o?.adaround ? R.adaroundForward(w, o.adaround.v, this.host(o.adaround.grid)) : w;
  }

  private host(g: GridOf<Nd<D>>): QuantGrid<D> {
    return { scale: g.scale.data, zero: g.zero.data, qmin: g.qmin, qmax: g.qmax };
  }

  upload(x: Nd<Floats>): Nd<D> {
    return R.nd(x.shape, this.of(x.data));
  }
  write(t: Nd<D>, data: Float32Array): void {
    if (data.length !== t.data.length) throw new Error(`write: ${data.length} values into a tensor of ${t.data.length}`);
    t.data.set(data);
  }
  read(t: Nd<D>): Promise<Nd> {
    return Promise.resolve({ shape: [...t.shape], data: Float32Array.from(t.data) });
  }
  readScalar(t: Nd<D>): Promise<number> {
    return Promise.resolve(t.data[0]!);
  }
  release(): void {}
  grid(g: QuantGrid<Floats>): GridOf<Nd<D>> {
    if (g.group !== undefined) throw new Error('grid: per-group scales are not implemented in the WebGPU kernels');
    return { scale: R.nd([g.scale.length], this.of(g.scale)), zero: R.nd([g.zero.length], this.of(g.zero)), qmin: g.qmin, qmax: g.qmax };
  }
  releaseGrid(): void {}
  flush(): void {}

  matmul(a: Nd<D>, b: Nd<D>, o: MatmulOptions<Nd<D>> = {}): Nd<D> {
    const A = o.transA ? transpose(a) : a;
    // gemmForward computes A·Wᵀ: pass B as it is when transposed, else its transpose
    const y = R.gemmForward(A, o.transB ? b : transpose(b), o.bias ?? null);
    return y;
  }
  gemmForward(x: Nd<D>, w: Nd<D>, b: Nd<D> | null): Nd<D> {
    return R.gemmForward(x, w, b);
  }
  gemmBackward(x: Nd<D>, w: Nd<D>, dy: Nd<D>): LinearGrads<Nd<D>> {
    return R.gemmBackward(x, w, dy);
  }
  matmulForward(x: Nd<D>, w: Nd<D>): Nd<D> {
    return R.matmulForward(x, w);
  }
  matmulBackward(x: Nd<D>, w: Nd<D>, dy: Nd<D>): { dx: Nd<D>; dw: Nd<D> } {
    return R.matmulBackward(x, w, dy);
  }

  conv2dForward(x: Nd<D>, w: Nd<D>, b: Nd<D> | null, a: Conv2dAttrs, o?: ConvOptions<Nd<D>>): Nd<D> {
    return R.conv2dForward(x, this.soft(w, o), b, a);
  }
  conv2dInputGrad(w: Nd<D>, dy: Nd<D>, xShape: readonly number[], a: Conv2dAttrs, o?: ConvOptions<Nd<D>>): Nd<D> {
    return R.conv2dBackward(R.zeros(this.like, xShape), this.soft(w, o), dy, a).dx;
  }
  conv2dWeightGrad(x: Nd<D>, w: Nd<D>, dy: Nd<D>, a: Conv2dAttrs, o?: ConvOptions<Nd<D>>): Nd<D> {
    const dw = R.conv2dBackward(x, this.soft(w, o), dy, a).dw;
    return o?.adaround ? R.adaroundBackward(w, o.adaround.v, this.host(o.adaround.grid), dw) : dw;
  }
  conv2dBiasGrad(dy: Nd<D>): Nd<D> {
    const [n, m] = dy.shape as [number, number];
    const inner = dy.data.length / (n * m);
    const db = R.alloc(this.like, m);
    for (let b = 0; b < n; b++) for (let c = 0; c < m; c++) for (let i = 0; i < inner; i++) db[c] = db[c]! + dy.data[(b * m + c) * inner + i]!;
    return { shape: [m], data: db };
  }
  conv2dBackward(x: Nd<D>, w: Nd<D>, dy: Nd<D>, a: Conv2dAttrs, o?: ConvOptions<Nd<D>>): ConvGrads<Nd<D>> {
    const g = R.conv2dBackward(x, this.soft(w, o), dy, a);
    return o?.adaround ? { ...g, dw: R.adaroundBackward(w, o.adaround.v, this.host(o.adaround.grid), g.dw) } : g;
  }

  activationForward(x: Nd<D>, a: Activation): Nd<D> {
    return act(x, a);
  }
  activationBackward(x: Nd<D>, dy: Nd<D>, a: Activation): Nd<D> {
    return dact(x, dy, a);
  }
  addForward(a: Nd<D>, b: Nd<D>, f: Activation = IDENTITY): Nd<D> {
    return act(R.addForward(a, b), f);
  }
  addBackward(dy: Nd<D>, fused?: { a: Nd<D>; b: Nd<D>; act: Activation }): { da: Nd<D>; db: Nd<D> } {
    return R.addBackward(fused ? dact(R.addForward(fused.a, fused.b), dy, fused.act) : dy);
  }
  mulForward(a: Nd<D>, b: Nd<D>): Nd<D> {
    return R.mulForward(a, b);
  }
  mulBackward(a: Nd<D>, b: Nd<D>, dy: Nd<D>): { da: Nd<D>; db: Nd<D> } {
    return R.mulBackward(a, b, dy);
  }

  globalAveragePoolForward(x: Nd<D>): Nd<D> {
    return R.globalAveragePoolForward(x);
  }
  globalAveragePoolBackward(x: Nd<D>, dy: Nd<D>): Nd<D> {
    return R.globalAveragePoolBackward(x, dy);
  }

  fakeQuantForward(x: Nd<D>, g: GridOf<Nd<D>>): Nd<D> {
    return R.fakeQuantForward(x, this.host(g));
  }
  fakeQuantBackward(x: Nd<D>, g: GridOf<Nd<D>>, dy: Nd<D>, gradScale = 1): { dx: Nd<D>; dscale: Nd<D> } {
    const r = R.fakeQuantBackward(x, this.host(g), dy);
    return { dx: r.dx, dscale: { shape: [r.dscale.length], data: r.dscale.map((v) => v * gradScale) as D } };
  }
  adaroundForward(w: Nd<D>, v: Nd<D>, g: GridOf<Nd<D>>): Nd<D> {
    return R.adaroundForward(w, v, this.host(g));
  }
  adaroundHard(w: Nd<D>, v: Nd<D>, g: GridOf<Nd<D>>): Nd<D> {
    return R.adaroundHard(w, v, this.host(g));
  }
  adaroundBackward(w: Nd<D>, v: Nd<D>, g: GridOf<Nd<D>>, dy: Nd<D>): Nd<D> {
    return R.adaroundBackward(w, v, this.host(g), dy);
  }
  adaroundRegForward(v: Nd<D>, beta: number): Nd<D> {
    return R.nd([1], this.of([R.adaroundRegForward(v, beta)]));
  }
  adaroundRegBackward(v: Nd<D>, beta: number, dLoss = 1, addTo: Nd<D> | null = null): Nd<D> {
    const d = R.adaroundRegBackward(v, beta, dLoss);
    if (addTo) for (let i = 0; i < d.data.length; i++) d.data[i] = d.data[i]! + addTo.data[i]!;
    return d;
  }

  mseForward(pred: Nd<D>, target: Nd<D>, a: Activation = IDENTITY): Nd<D> {
    return R.nd([1], this.of([R.mseForward(act(pred, a), target)]));
  }
  mseBackward(pred: Nd<D>, target: Nd<D>, dLoss = 1, a: Activation = IDENTITY): Nd<D> {
    return dact(pred, R.mseBackward(act(pred, a), target, dLoss), a);
  }
  mseLossAndGrad(pred: Nd<D>, target: Nd<D>, o: { act?: Activation; dLoss?: number } = {}): { loss: Nd<D>; grad: Nd<D> } {
    return { loss: this.mseForward(pred, target, o.act), grad: this.mseBackward(pred, target, o.dLoss, o.act) };
  }
  lpLossForward(pred: Nd<D>, target: Nd<D>, p = 2.4): Nd<D> {
    return R.nd([1], this.of([R.lpLossForward(pred, target, p)]));
  }
  lpLossBackward(pred: Nd<D>, target: Nd<D>, p = 2.4, dLoss = 1): Nd<D> {
    return R.lpLossBackward(pred, target, p, dLoss);
  }

  /** Adam keeps its own moments (optim/adam.ts); `state.m` and `state.v` are not read here. */
  adamStep(s: AdamState<Nd<D>>, grad: Nd<D>, h: AdamHyper): void {
    if (!(s.param.data instanceof Float32Array)) throw new Error('adamStep: the CPU Adam updates float32 parameters');
    let adam = this.adams.get(s.param);
    if (!adam) this.adams.set(s.param, (adam = new Adam(s.param.data, { lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps })));
    adam.step(grad.data);
  }
}
