import type { Gemm } from './wasm/gemm';
import { conv2dBackward, conv2dForward, type Conv2dAttrs, type Nd } from './reference';

/**
 * Convolution as im2col + SGEMM, forward and weight gradient: the two passes layer-wise
 * reconstruction needs. Columns of the last forward are kept for the weight gradient of the same
 * batch, and every buffer is reused across iterations: nothing is allocated once sizes are stable.
 * Grouped convolutions fall back to the reference kernels for now.
 */
export class GemmConv {
  /** Byte offsets of this layer's buffers in the Gemm's memory, laid out once per geometry. */
  private layout: { key: string; x: number; col: number; w: number; y: number; dy: number; dw: number } | null = null;
  private colFor: Float32Array | null = null;

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

  /**
   * The columns, weights and outputs live in wasm memory so that the GEMMs read them in place:
   * copying the column matrix in and out each call cost more than the multiplication. The Gemm's
   * arena is reset here, so one GemmConv uses a Gemm at a time (layer-wise reconstruction does).
   */
  private buffers(g: ReturnType<GemmConv['geometry']>) {
    const key = `${g.B}x${g.C}x${g.H}x${g.W}/${g.K}x${g.rows}x${g.P}`;
    if (this.layout?.key !== key) {
      this.gemm.reset();
      this.layout = { key, x: this.gemm.alloc(g.B * g.C * g.H * g.W), col: this.gemm.alloc(g.rows * g.P), w: this.gemm.alloc(g.K * g.rows), y: this.gemm.alloc(g.K * g.P), dy: this.gemm.alloc(g.K * g.P), dw: this.gemm.alloc(g.K * g.rows) };
      this.colFor = null;
    }
    return this.layout;
  }

  /** The column matrix of x, written by the wasm module next to the GEMM; kept while x is the same batch. */
  private im2col(x: Nd, g: ReturnType<GemmConv['geometry']>, at: NonNullable<GemmConv['layout']>): void {
    if (this.colFor === x.data) return;
    this.gemm.f32(at.x, x.data.length).set(x.data);
    this.gemm.im2colPtr(at.x, [g.B, g.C, g.H, g.W], [g.kh, g.kw], [g.sh, g.sw], [g.pt, g.pl], [g.dh, g.dw], [g.Ho, g.Wo], at.col);
    this.colFor = x.data;
  }

  forward(x: Nd, w: Nd): Nd {
    if (this.attrs.group !== 1) return conv2dForward(x, w, this.bias, this.attrs);
    const g = this.geometry(x, w);
    const { B, K, Ho, Wo, rows, P } = g;
    const at = this.buffers(g);
    this.im2col(x, g, at);
    this.gemm.f32(at.w, K * rows).set(w.data);
    this.gemm.sgemmPtr(false, false, K, P, rows, 1, at.w, rows, at.col, P, 0, at.y, P);
    // [K, B·HoWo] → [B, K, HoWo], adding the bias on the way
    const yt = this.gemm.f32(at.y, K * P);
    const hw = Ho * Wo;
    const y = new Float32Array(B * K * hw);
    const bias = this.bias?.data;
    for (let k = 0; k < K; k++) {
      const bk = bias ? bias[k]! : 0;
      for (let b = 0; b < B; b++) {
        const src = k * P + b * hw;
        const dst = (b * K + k) * hw;
        for (let p = 0; p < hw; p++) y[dst + p] = yt[src + p]! + bk;
      }
    }
    return { shape: [B, K, Ho, Wo], data: y };
  }

  /** dL/dW = dY' · colᵀ, with dY' the output gradient as [K, B·HoWo]. Call after `forward` on the same `x`. */
  weightGrad(x: Nd, w: Nd, dy: Nd): Nd {
    if (this.attrs.group !== 1) return conv2dBackward(x, w, dy, this.attrs).dw;
    const g = this.geometry(x, w);
    const { B, K, Ho, Wo, rows, P } = g;
    const at = this.buffers(g);
    this.im2col(x, g, at);
    const hw = Ho * Wo;
    const dyt = this.gemm.f32(at.dy, K * P);
    for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) dyt.set(dy.data.subarray((b * K + k) * hw, (b * K + k + 1) * hw), k * P + b * hw);
    this.gemm.sgemmPtr(false, true, K, rows, P, 1, at.dy, P, at.col, P, 0, at.dw, rows);
    return { shape: [...w.shape], data: this.gemm.f32(at.dw, K * rows).slice() };
  }
}
