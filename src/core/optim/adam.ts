/**
 * Adam (Kingma & Ba) with PyTorch's defaults, the optimiser every reference implementation uses
 * for rounding variables and step sizes. State is allocated once per parameter, nothing per step.
 */
export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export class Adam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  /** Read at every step, so that a schedule can set it between steps. */
  lr: number;

  constructor(readonly param: Float32Array, opts: AdamOptions) {
    this.lr = opts.lr;
    this.m = new Float32Array(param.length);
    this.v = new Float32Array(param.length);
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
  }

  step(grad: ArrayLike<number>): void {
    this.t++;
    const { m, v, param, beta1: b1, beta2: b2, eps } = this;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    const lr = this.lr;
    for (let i = 0; i < param.length; i++) {
      const g = grad[i]!;
      m[i] = b1 * m[i]! + (1 - b1) * g;
      v[i] = b2 * v[i]! + (1 - b2) * g * g;
      param[i] = param[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
    }
  }
}
