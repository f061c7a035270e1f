import type { Gemm } from './wasm/gemm';
import { conv2dBackward, conv2dForward, type Conv2dAttrs, type Nd } from './reference';

/**
 * Convolution as im2col + SGEMM, forward and weight gradient: the two passes layer-wise
 * reconstruction needs. Columns of the last forward are kept for the weight gradient of the same
 * batch, and every buffer is reused across iterations: nothing is allocated once sizes are stable.
 * Grouped convolutions fall back to the reference kernels for now.
 */
export class GemmConv {
  private col = new Float32Array(0);
  private colFor: Float32Array | null = null;
  private yt = new Float32Array(0);
  private dyt = new Float32Array(0);
  private dw = new Float32Array(0);

  constructor(
    private readonly gemm: Gemm,
    private readonly attrs: Conv2dAttrs,
    private readonly bias: Nd | null,
  ) {}

  private geometry(x: Nd, w: Nd) {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const [K, , kh, kw] = w.shape as [number, number, number, number];
    const { strides: [sh, sw], pads: [pt, pl, pb, pr], dilations: [dh, dw] } = this.attrs;
    const Ho = Math.floor((H + pt + pb - ((kh - 1) * dh + 1)) / sh) + 1;
    const Wo = Math.floor((W + pl + pr - ((kw - 1) * dw + 1)) / sw) + 1;
    return { B, C, H, W, K, kh, kw, sh, sw, pt, pl, dh, dw, Ho, Wo, rows: C * kh * kw, P: B * Ho * Wo };
  }

  /** Lays x out as [C·kh·kw, B·Ho·Wo]: one column per output position, zero where the window hits padding. */
  private im2col(x: Nd, g: ReturnType<GemmConv['geometry']>): Float32Array {
    if (this.colFor === x.data) return this.col;
    const { B, C, H, W, kh, kw, sh, sw, pt, pl, dh, dw, Ho, Wo, rows, P } = g;
    if (this.col.length < rows * P) this.col = new Float32Array(rows * P);
    const col = this.col;
    const X = x.data;
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const row = ((c * kh + i) * kw + j) * P;
          for (let b = 0; b < B; b++) {
            const plane = (b * C + c) * H * W;
            const base = row + b * Ho * Wo;
            for (let oy = 0; oy < Ho; oy++) {
              const iy = oy * sh - pt + i * dh;
              const dst = base + oy * Wo;
              if (iy < 0 || iy >= H) {
                col.fill(0, dst, dst + Wo);
                continue;
              }
              const src = plane + iy * W;
              for (let ox = 0; ox < Wo; ox++) {
                const ix = ox * sw - pl + j * dw;
                col[dst + ox] = ix >= 0 && ix < W ? X[src + ix]! : 0;
              }
            }
          }
        }
      }
    }
    this.colFor = X;
    return col;
  }

  forward(x: Nd, w: Nd): Nd {
    if (this.attrs.group !== 1) return conv2dForward(x, w, this.bias, this.attrs);
    const g = this.geometry(x, w);
    const { B, K, Ho, Wo, rows, P } = g;
    const col = this.im2col(x, g);
    if (this.yt.length < K * P) this.yt = new Float32Array(K * P);
    this.gemm.sgemm(false, false, K, P, rows, 1, w.data, col.subarray(0, rows * P), 0, this.yt.subarray(0, K * P));
    // [K, B·HoWo] → [B, K, HoWo], adding the bias on the way
    const hw = Ho * Wo;
    const y = new Float32Array(B * K * hw);
    const bias = this.bias?.data;
    for (let k = 0; k < K; k++) {
      const bk = bias ? bias[k]! : 0;
      for (let b = 0; b < B; b++) {
        const src = k * P + b * hw;
        const dst = (b * K + k) * hw;
        for (let p = 0; p < hw; p++) y[dst + p] = this.yt[src + p]! + bk;
      }
    }
    return { shape: [B, K, Ho, Wo], data: y };
  }

  /** dL/dW = dY' · colᵀ, with dY' the output gradient as [K, B·HoWo]. */
  weightGrad(x: Nd, w: Nd, dy: Nd): Nd {
    if (this.attrs.group !== 1) return conv2dBackward(x, w, dy, this.attrs).dw;
    const g = this.geometry(x, w);
    const { B, K, Ho, Wo, rows, P } = g;
    const col = this.im2col(x, g);
    const hw = Ho * Wo;
    if (this.dyt.length < K * P) this.dyt = new Float32Array(K * P);
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) this.dyt.set(dy.data.subarray((b * K + k) * hw, (b * K + k + 1) * hw), k * P + b * hw);
    if (this.dw.length !== K * rows) this.dw = new Float32Array(K * rows);
    this.gemm.sgemm(false, true, K, rows, P, 1, this.dyt.subarray(0, K * P), col.subarray(0, rows * P), 0, this.dw);
    return { shape: [...w.shape], data: this.dw };
  }
}
