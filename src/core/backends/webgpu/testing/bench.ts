import { conv2dAttrs, type Conv2dAttrs } from '../../cpu/reference/conv2d';
import { rng } from '../../../random';
import { WebGpuBackend, type GpuTensor } from '../backend';
import type { WebGpuAdapterReport } from '../device';

/*
 * Throughput of the convolution kernels: forward, input gradient, weight gradient, and the
 * forward with AdaRound's soft rounding fused into the weight load. Wall-clock per pass, waiting
 * for the queue to drain after each timed batch, best of several batches.
 * On a software adapter (SwiftShader) the shapes are small and the numbers only indicative.
 */

export interface BenchRow {
  readonly layer: string;
  readonly pass: 'forward' | 'forward (AdaRound fused)' | 'input grad' | 'weight grad';
  readonly gflop: number;
  readonly ms: number;
  readonly gflops: number;
  readonly plan: string;
}

interface Layer {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  attrs: Conv2dAttrs;
}

const FULL: Layer[] = [
  { name: 'ResNet 3×3, 64 ch, 56², batch 8', x: [8, 64, 56, 56], w: [64, 64, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1] }) },
  { name: 'ResNet 3×3, 256 ch, 14², batch 8', x: [8, 256, 14, 14], w: [256, 256, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1] }) },
  { name: '1×1, 64 → 256, 56², batch 8', x: [8, 64, 56, 56], w: [256, 64, 1, 1], attrs: conv2dAttrs() },
  { name: 'depthwise 3×3, 144 ch, 56², batch 8', x: [8, 144, 56, 56], w: [144, 1, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1], group: 144 }) },
];

const QUICK: Layer[] = [
  { name: '3×3, 32 ch, 16², batch 4', x: [4, 32, 16, 16], w: [32, 32, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1] }) },
  { name: '3×3, 64 ch, 8², batch 4', x: [4, 64, 8, 8], w: [64, 64, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1] }) },
  { name: '1×1, 32 → 64, 16², batch 4', x: [4, 32, 16, 16], w: [64, 32, 1, 1], attrs: conv2dAttrs() },
  { name: 'depthwise 3×3, 64 ch, 16², batch 4', x: [4, 64, 16, 16], w: [64, 1, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1], group: 64 }) },
];

function randn(n: number, rand: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

export async function runConvBench(device: GPUDevice, adapter: WebGpuAdapterReport | null, o: { quick?: boolean; seconds?: number } = {}): Promise<BenchRow[]> {
  const quick = o.quick ?? adapter?.isFallbackAdapter ?? false;
  const seconds = o.seconds ?? (quick ? 0.3 : 0.5);
  const b = new WebGpuBackend(device, adapter);
  const rand = rng(1);
  const rows: BenchRow[] = [];
  try {
    for (const l of quick ? QUICK : FULL) {
      const [n, c, h, wd] = l.x;
      const [m, cg, kh, kw] = l.w;
      const { strides: [sh, sw], pads: [pt, pl, pb, pr] } = l.attrs;
      const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
      const ow = Math.floor((wd + pl + pr - kw) / sw) + 1;
      const gflop = (2 * n * m * oh * ow * cg * kh * kw) / 1e9;
      const x = b.upload({ shape: l.x, data: randn(n * c * h * wd, rand) });
      const w = b.upload({ shape: l.w, data: randn(m * cg * kh * kw, rand) });
      const v = b.upload({ shape: l.w, data: randn(m * cg * kh * kw, rand) });
      const grid = b.grid({ scale: Float32Array.from({ length: m }, () => 0.05), zero: new Array<number>(m).fill(0), qmin: -8, qmax: 7 });
      const dy = b.upload({ shape: [n, m, oh, ow], data: randn(n * m * oh * ow, rand) });
      const passes: [BenchRow['pass'], () => GpuTensor][] = [
        ['forward', () => b.conv2dForward(x, w, null, l.attrs)],
        ['forward (AdaRound fused)', () => b.conv2dForward(x, w, null, l.attrs, { adaround: { v, grid } })],
        ['input grad', () => b.conv2dInputGrad(w, dy, l.x, l.attrs)],
        ['weight grad', () => b.conv2dWeightGrad(x, w, dy, l.attrs)],
      ];
      for (const [pass, run] of passes) {
        b.lastGemmPlan = null;
        b.release(run());
        await b.idle();
        const plan = b.lastGemmPlan as WebGpuBackend['lastGemmPlan'];
        let best = Infinity;
        for (let batch = 0; batch < 3; batch++) {
          let reps = 0;
          const t0 = performance.now();
          while (performance.now() - t0 < (seconds * 1000) / 3 || reps < 2) {
            b.release(run());
            if (++reps % 4 === 0) await b.idle();
          }
          await b.idle();
          best = Math.min(best, (performance.now() - t0) / reps);
        }
        rows.push({
          layer: l.name,
          pass,
          gflop,
          ms: best,
          gflops: gflop / (best / 1000),
          plan: plan ? `${plan.tile.wgy * plan.tile.tm}×${plan.tile.wgx * plan.tile.tn} tiles${plan.splits > 1 ? `, split-K ${plan.splits}` : ''}` : 'direct',
        });
      }
      b.release(x, w, v, dy);
      b.releaseGrid(grid);
    }
  } finally {
    b.dispose();
  }
  return rows;
}
