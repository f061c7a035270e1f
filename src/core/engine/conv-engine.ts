import { conv2dBackward, conv2dForward, type Conv2dAttrs, type Nd } from '../backends/cpu/reference';
import { GemmConv } from '../backends/cpu/conv-gemm';
import { createGemm, type Gemm } from '../backends/cpu/wasm/gemm';

/** A convolution with both gradients: what a reconstructed block needs of each Conv node. */
export interface ConvEngine {
  forward(x: Nd, w: Nd): Nd;
  inputGrad(x: Nd, w: Nd, dy: Nd): Nd;
  weightGrad(x: Nd, w: Nd, dy: Nd): Nd;
}

export type ConvFactory = (attrs: Conv2dAttrs, bias: Nd | null) => ConvEngine;

/** The plain TypeScript kernels: for tests, and the oracle the fast path is checked against. */
export const referenceConv: ConvFactory = (attrs, bias) => ({
  forward: (x, w) => conv2dForward(x, w, bias, attrs),
  inputGrad: (x, w, dy) => conv2dBackward(x, w, dy, attrs).dx,
  weightGrad: (x, w, dy) => conv2dBackward(x, w, dy, attrs).dw,
});

/**
 * WASM kernel instances for the convolutions of one block at a time. Each convolution needs an
 * instance of its own, because a GemmConv lays its buffers out in its instance's memory once and
 * reuses them every iteration; blocks run one after another, so instances are reused across blocks.
 */
export class WasmConvPool {
  private readonly gemms: Gemm[] = [];

  /** A factory with `count` instances ready: program compilation is synchronous. */
  async factory(count: number): Promise<ConvFactory> {
    while (this.gemms.length < count) this.gemms.push(await createGemm());
    let next = 0;
    return (attrs, bias) => {
      const gemm = this.gemms[next++];
      if (!gemm) throw new Error(`WasmConvPool: more than the ${count} convolutions announced`);
      const fast = new GemmConv(gemm, attrs, bias);
      return {
        forward: (x, w) => fast.forward(x, w),
        weightGrad: (x, w, dy) => fast.weightGrad(x, w, dy),
        inputGrad: (x, w, dy) => conv2dBackward(x, w, dy, attrs).dx,
      };
    };
  }
}
