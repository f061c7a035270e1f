import type { ConvShape, Gemm } from './wasm/gemm';
import type { Clamp, Conv2dAttrs, Nd } from './reference';
import { copy32 } from '../../tensor/buffer-pool';

/**
 * A convolution layer on the WebAssembly kernels: forward, input gradient and weight gradient,
 * for dense, grouped and depthwise convolutions (gemm.conv2dPtr: im2col/col2im + SGEMM chunk by
 * chunk, or the direct depthwise kernel), on the Gemm's threads.
 *
 * Tensors are copied into the Gemm's memory on every call and results copied out, so callers
 * keep plain Float32Arrays; the buffers are laid out once per geometry and reused, so nothing is
 * allocated in wasm memory once sizes are stable. The layout is made after a `gemm.reset()`, so
 * one GemmConv owns its Gemm's arena while it runs; a GemmConv that finds the arena reset by
 * someone else (gemm.epoch changed) lays its buffers out again instead of using stale offsets.
 */
export class GemmConv {
  /** Byte offsets of this layer's buffers in the Gemm's memory, laid out once per geometry. */
  private layout: { key: string; epoch: number; x: number; w: number; bias: number; y: number; dy: number; dx: number; dw: number } | null = null;

  constructor(
    private readonly gemm: Gemm,
    private readonly attrs: Conv2dAttrs,
    private readonly bias: Nd | null,
  ) {}

  private shape(x: Nd, w: Nd): ConvShape {
    if (x.shape.length !== 4 || w.shape.length !== 4) throw new Error(`conv: expected NCHW x and [K, C/group, kh, kw] w, got [${x.shape.join(', ')}] and [${w.shape.join(', ')}]`);
    const { strides, pads, dilations, group } = this.attrs;
    return { input: x.shape as [number, number, number, number], weight: w.shape as [number, number, number, number], strides, pads, dilations, group };
  }

  private buffers(s: ConvShape) {
    const [B, C, H, W] = s.input;
    const [K, Cg, kh, kw] = s.weight;
    const [Ho, Wo] = this.gemm.convOutputSize(s);
    const key = `${s.input.join('x')}/${s.weight.join('x')}/${Ho}x${Wo}`;
    if (this.layout?.key !== key || this.layout.epoch !== this.gemm.epoch) {
      this.gemm.reset();
      const g = this.gemm;
      const xLen = B * C * H * W, yLen = B * K * Ho * Wo, wLen = K * Cg * kh * kw;
      this.layout = { key, epoch: g.epoch, x: g.alloc(xLen), w: g.alloc(wLen), bias: g.alloc(K), y: g.alloc(yLen), dy: g.alloc(yLen), dx: g.alloc(xLen), dw: g.alloc(wLen) };
    }
    return { at: this.layout, Ho, Wo, K };
  }

  private checkDy(s: ConvShape, Ho: number, Wo: number, K: number, dy: Nd): void {
    const yShape = [s.input[0], K, Ho, Wo];
    if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== yShape[i])) {
      throw new Error(`conv backward: dy is [${dy.shape.join(', ')}], expected [${yShape.join(', ')}]`);
    }
  }

  /** y = conv(x, w) + bias, then the activation when one is fused (`act`). */
  forward(x: Nd, w: Nd, act?: Clamp): Nd {
    const s = this.shape(x, w);
    const { at, Ho, Wo, K } = this.buffers(s);
    const g = this.gemm;
    const yShape = [s.input[0], K, Ho, Wo];
    const yLen = yShape.reduce((a, b) => a * b, 1);
    g.f32(at.x, x.data.length).set(x.data);
    g.f32(at.w, w.data.length).set(w.data);
    if (this.bias) g.f32(at.bias, K).set(this.bias.data.subarray(0, K));
    g.conv2dPtr('forward', s, { x: at.x, w: at.w, bias: this.bias ? at.bias : 0, out: at.y });
    if (act) g.clampPtr(at.y, yLen, act.lo, act.hi);
    // views only after the calls: the convolution's scratch may have grown the memory
    return { shape: yShape, data: copy32(g.f32(at.y, yLen)) };
  }

  /**
   * Both gradients from one copy of dy, each when asked for. With a fused activation, dy is the
   * gradient at the activation's output `act.y` and is masked to the clamp's open range first.
   */
  backward(x: Nd, w: Nd, dy: Nd, need: { readonly dx: boolean; readonly dw: boolean }, act?: { readonly clamp: Clamp; readonly y: Nd }): { dx: Nd | null; dw: Nd | null } {
    const s = this.shape(x, w);
    const { at, Ho, Wo, K } = this.buffers(s);
    this.checkDy(s, Ho, Wo, K, dy);
    const g = this.gemm;
    g.f32(at.dy, dy.data.length).set(dy.data);
    if (act) {
      g.f32(at.y, act.y.data.length).set(act.y.data);
      g.clampGradPtr(at.dy, at.y, dy.data.length, act.clamp.lo, act.clamp.hi);
    }
    let dx: Nd | null = null;
    let dw: Nd | null = null;
    if (need.dx) {
      g.f32(at.w, w.data.length).set(w.data);
      g.conv2dPtr('inputGrad', s, { w: at.w, dy: at.dy, out: at.dx });
      dx = { shape: [...x.shape], data: copy32(g.f32(at.dx, x.data.length)) };
    }
    if (need.dw) {
      g.f32(at.x, x.data.length).set(x.data);
      g.conv2dPtr('weightGrad', s, { x: at.x, dy: at.dy, out: at.dw });
      dw = { shape: [...w.shape], data: copy32(g.f32(at.dw, w.data.length)) };
    }
    return { dx, dw };
  }

  /** dL/dW = dY' · colᵀ, with dY' the output gradient as [K, B·HoWo] (per group). */
  weightGrad(x: Nd, w: Nd, dy: Nd): Nd {
    return this.backward(x, w, dy, { dx: false, dw: true }).dw!;
  }

  /** dL/dX = col2im(Wᵀ · dY') (per group); x only gives the input shape. */
  inputGrad(x: Nd, w: Nd, dy: Nd): Nd {
    return this.backward(x, w, dy, { dx: true, dw: false }).dx!;
  }
}
