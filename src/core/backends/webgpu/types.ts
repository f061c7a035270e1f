import type { Conv2dAttrs } from '../cpu/reference/conv2d';
import type { Floats, Nd } from '../cpu/reference/nd';
import type { QuantGrid } from '../cpu/reference/quant-grid';

/*
 * The kernel interface that reconstruction code is written against. Two implementations share it:
 * the WebGPU backend (tensors are GPU buffers, ops are enqueued and run when the queue is flushed)
 * and the CPU reference adapter (tensors are `Nd`s, ops run at once). Argument conventions are the
 * reference kernels' (`src/core/backends/cpu/reference`): NCHW, ONNX Conv attributes, weights
 * [out, in/group, kh, kw], Gemm weights [out, in], quantization channels on axis 0.
 */

/** What every backend tensor exposes: its shape. Data lives wherever the backend keeps it. */
export interface TensorLike {
  readonly shape: readonly number[];
}

/**
 * The activations of CNN blocks, as data so that one kernel generator can fuse any of them into
 * an element-wise op or into the reconstruction loss. Constants follow ONNX (HardSigmoid's α, β
 * default to 0.2, 0.5; ReLU6 is clip(0, 6)).
 */
export type Activation =
  | { readonly kind: 'identity' }
  | { readonly kind: 'relu' }
  | { readonly kind: 'clip'; readonly min: number; readonly max: number }
  | { readonly kind: 'leakyRelu'; readonly alpha: number }
  | { readonly kind: 'sigmoid' }
  | { readonly kind: 'hardSigmoid'; readonly alpha: number; readonly beta: number }
  | { readonly kind: 'hardSwish' };

/** A quantization grid whose scales (and zero points) live on the backend, so LSQ can learn them there. */
export interface GridOf<T> {
  /** One scale per tensor, or one per slice along axis 0. */
  readonly scale: T;
  /** Integer zero points stored as floats (exact up to 2^24), one per scale. */
  readonly zero: T;
  readonly qmin: number;
  readonly qmax: number;
}

/**
 * A weight seen through AdaRound's soft rounding: the kernels read
 * w_soft = s·(clamp(floor(w/s) + h(V) + z, qmin, qmax) − z) instead of `weight`.
 */
export interface SoftRounding<T> {
  readonly v: T;
  readonly grid: GridOf<T>;
}

export interface ConvOptions<T> {
  /** Read the weight through AdaRound's soft rounding (fused into the weight load on WebGPU). */
  readonly adaround?: SoftRounding<T>;
  /**
   * `auto` (the default) runs depthwise convolutions (group = C, one input channel per group) on the
   * direct depthwise kernel and everything else as implicit GEMM; the others force a path (tests).
   */
  readonly algorithm?: 'auto' | 'gemm' | 'depthwise';
}

export interface ConvGrads<T> {
  dx: T;
  dw: T;
  db: T;
}

export interface LinearGrads<T> {
  dx: T;
  dw: T;
  db: T;
}

export interface MatmulOptions<T> {
  readonly transA?: boolean;
  readonly transB?: boolean;
  /** Added to every row: one value per output column. */
  readonly bias?: T | null;
}

export interface AdamState<T> {
  readonly param: T;
  readonly m: T;
  readonly v: T;
}

export interface AdamHyper {
  readonly lr: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  /** The 1-based step number, for bias correction. */
  readonly t: number;
}

/**
 * Forward and backward kernels for layer- and block-wise reconstruction. Results are new tensors
 * owned by the caller: `release` them when done, so the backend can reuse their memory (on WebGPU,
 * an iteration that releases what it allocates allocates nothing once shapes are stable).
 * Scalars (losses, regularisers) come back as one-element tensors so that nothing waits on the
 * device until the caller reads them.
 */
export interface KernelBackend<T extends TensorLike> {
  readonly name: string;
  /**
   * Why the device behind this backend is gone (WebGPU's device loss), null while it works;
   * absent on backends that cannot lose one. Callers move the remaining work to the CPU.
   */
  readonly lost?: string | null;

  // ---- memory ----
  upload(x: Nd<Floats>): T;
  /** Overwrites `t` (same length) with `data`. */
  write(t: T, data: Float32Array): void;
  read(t: T): Promise<Nd>;
  readScalar(t: T): Promise<number>;
  release(...ts: readonly (T | null | undefined)[]): void;
  grid(g: QuantGrid<Floats>): GridOf<T>;
  releaseGrid(g: GridOf<T>): void;
  /** Starts the work enqueued so far (a no-op on the CPU). */
  flush(): void;

  // ---- linear layers ----
  /** C = op(A)·op(B) (+ bias per column), A [M, K] and B [K, N] before the transposes. */
  matmul(a: T, b: T, o?: MatmulOptions<T>): T;
  /** y[n, o] = Σ_i x[n, i]·W[o, i] + b[o] (ONNX Gemm with transB = 1). */
  gemmForward(x: T, w: T, b: T | null): T;
  gemmBackward(x: T, w: T, dy: T): LinearGrads<T>;
  /** y[..., n] = Σ_k x[..., k]·W[k, n] */
  matmulForward(x: T, w: T): T;
  matmulBackward(x: T, w: T, dy: T): { dx: T; dw: T };

  // ---- convolution ----
  conv2dForward(x: T, w: T, b: T | null, attrs: Conv2dAttrs, o?: ConvOptions<T>): T;
  conv2dInputGrad(w: T, dy: T, xShape: readonly number[], attrs: Conv2dAttrs, o?: ConvOptions<T>): T;
  /**
   * dL/dW. With `o.adaround` it returns dL/dV instead: the AdaRound backward is applied to the
   * weight gradient on the way out (fused into the GEMM epilogue on WebGPU). `w` is the float
   * weight; only its shape is read unless `o.adaround` is given.
   */
  conv2dWeightGrad(x: T, w: T, dy: T, attrs: Conv2dAttrs, o?: ConvOptions<T>): T;
  conv2dBiasGrad(dy: T): T;
  /** All three gradients; with `o.adaround`, `dw` is dL/dV (see conv2dWeightGrad). */
  conv2dBackward(x: T, w: T, dy: T, attrs: Conv2dAttrs, o?: ConvOptions<T>): ConvGrads<T>;

  // ---- element-wise ----
  activationForward(x: T, act: Activation): T;
  activationBackward(x: T, dy: T, act: Activation): T;
  /** act(a + b): a residual add with the block's activation fused. */
  addForward(a: T, b: T, act?: Activation): T;
  /** Gradients of act(a + b) for a and b (copies of each other); pass `a`, `b` only with an activation. */
  addBackward(dy: T, fused?: { a: T; b: T; act: Activation }): { da: T; db: T };
  /** a·b with b equal to a or broadcast over trailing axes (a squeeze-excitation gate [N, C, 1, 1]). */
  mulForward(a: T, b: T): T;
  mulBackward(a: T, b: T, dy: T): { da: T; db: T };

  // ---- pooling ----
  globalAveragePoolForward(x: T): T;
  globalAveragePoolBackward(x: T, dy: T): T;

  // ---- quantization ----
  fakeQuantForward(x: T, g: GridOf<T>): T;
  /** STE for x; `dscale` is LSQ's step-size gradient without its 1/√(N·qmax) factor (multiply by `gradScale` to apply it). */
  fakeQuantBackward(x: T, g: GridOf<T>, dy: T, gradScale?: number): { dx: T; dscale: T };
  adaroundForward(w: T, v: T, g: GridOf<T>): T;
  adaroundHard(w: T, v: T, g: GridOf<T>): T;
  adaroundBackward(w: T, v: T, g: GridOf<T>, dy: T): T;
  /** Σ 1 − |2h(V) − 1|^β as a one-element tensor. */
  adaroundRegForward(v: T, beta: number): T;
  /** dLoss·∂f_reg/∂V, plus `addTo` when given (the reconstruction gradient, to save a pass). */
  adaroundRegBackward(v: T, beta: number, dLoss?: number, addTo?: T | null): T;

  // ---- losses ----
  /** mean (act(pred) − target)² as a one-element tensor (act defaults to identity). */
  mseForward(pred: T, target: T, act?: Activation): T;
  mseBackward(pred: T, target: T, dLoss?: number, act?: Activation): T;
  /** Loss and gradient in one pass over the data: what a reconstruction step needs. */
  mseLossAndGrad(pred: T, target: T, o?: { act?: Activation; dLoss?: number }): { loss: T; grad: T };
  /** mean |pred − target|^p (BRECQ/LAPQ's p = 2.4). */
  lpLossForward(pred: T, target: T, p?: number): T;
  lpLossBackward(pred: T, target: T, p?: number, dLoss?: number): T;

  // ---- optimiser ----
  /** One Adam step (PyTorch's defaults), in place on param, m and v. */
  adamStep(state: AdamState<T>, grad: T, h: AdamHyper): void;
}

export const IDENTITY: Activation = { kind: 'identity' };
