import { clipBackward, clampForward, conv2dBackward, conv2dForward, type Clamp, type Conv2dAttrs, type Nd } from '../backends/cpu/reference';
import { GemmConv } from '../backends/cpu/conv-gemm';
import { createGemm, type Gemm } from '../backends/cpu/wasm/gemm';

/** Worker threads for the WASM kernels: 'auto' takes the machine's cores (capped), a number fixes it. */
export type Threads = number | 'auto';

/** A convolution with both gradients: what a reconstructed block needs of each Conv node. */
export interface ConvEngine {
  /** conv(x, w) + bias, through the fused activation when `act` is given. */
  forward(x: Nd, w: Nd, act?: Clamp): Nd;
  /**
   * Both gradients from one dy, each when asked for. With a fused activation, dy is the gradient at
   * the activation's output `act.y` (what the forward returned), masked to the clamp's range first.
   */
  backward(x: Nd, w: Nd, dy: Nd, need: { readonly dx: boolean; readonly dw: boolean }, act?: { readonly clamp: Clamp; readonly y: Nd }): { dx: Nd | null; dw: Nd | null };
}

export type ConvFactory = (attrs: Conv2dAttrs, bias: Nd | null) => ConvEngine;

/** The plain TypeScript kernels: for tests, and the oracle the fast path is checked against. */
export const referenceConv: ConvFactory = (attrs, bias) => ({
  forward: (x, w, act) => {
    const y = conv2dForward(x, w, bias, attrs);
    return act ? clampForward(y, act) : y;
  },
  backward: (x, w, dy, need, act) => {
    // the clamp's mask from its output: lo < y < hi exactly where lo < x < hi
    const g = act ? clipBackward(act.y, dy, act.clamp.lo, act.clamp.hi) : dy;
    const { dx, dw } = conv2dBackward(x, w, g, attrs);
    return { dx: need.dx ? dx : null, dw: need.dw ? dw : null };
  },
});

/**
 * The WASM kernels for every convolution of the programs a run compiles: one kernel instance (one
 * linear memory, one thread pool) shared by all of them. A GemmConv copies its tensors in and out
 * on each call and re-lays its buffers out when another one used the arena in between, so sharing
 * costs a few bump allocations per call and keeps one set of worker threads per run.
 */
export class WasmConvPool {
  private gemm: Promise<Gemm> | null = null;

  /** `threads`: the kernels' thread count; results are bitwise the same for any count, only the speed differs. */
  constructor(private readonly threads: Threads = 'auto') {}

  /** A factory for the convolutions of one program (compilation is synchronous, the instance is made ahead). */
  async factory(): Promise<ConvFactory> {
    this.gemm ??= createGemm({ threads: this.threads });
    const gemm = await this.gemm;
    return (attrs, bias) => new GemmConv(gemm, attrs, bias);
  }

  /** Stops the kernels' worker threads now rather than at garbage collection; the pool can be used again after. */
  async dispose(): Promise<void> {
    const gemm = this.gemm;
    this.gemm = null;
    if (gemm) (await gemm).dispose();
  }
}
