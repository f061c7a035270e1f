/**
 * Time of one reconstruction iteration of a ResNet basic block at batch 32, through the real loop
 * (reconstructWeights: gather a batch, AdaRound's soft weights, forward, the loss, backward to the
 * weights, the regulariser, Adam), on one and on two kernel threads.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/block-iteration.ts [--iters=30] [--threads=1,2] [--channels=64] [--hw=56]
 *
 * The model: a 3→C stem convolution (stride 4, so the block sees C×hw×hw), one basic block
 * (conv-BN-ReLU-conv-BN + identity, ReLU) and a linear head, with seeded random weights and 32
 * random calibration inputs. Stem and head stay at round-to-nearest, so only the block learns.
 * Per-iteration time is the median gap between consecutive iterations' loss events (one per
 * iteration here), so the block's caches and metrics are not counted. GFLOP/s counts the two 3×3
 * convolutions' forward, input gradient and weight gradient (3 × 2·B·C·C·9·hw² each).
 */
import { loadavg } from 'node:os';
import { GraphWriter } from '../src/core/testing/graph-writer';
import { intsAttr } from '../src/core/graph/attributes';
import { floatTensor } from '../src/core/onnx/tensor-data';
import type { ModelProto } from '../src/core/onnx/schema';
import { canonicalize } from '../src/core/graph/canonicalize';
import { findQuantLayers } from '../src/core/graph/layers';
import { partitionModel } from '../src/core/graph/partition';
import { reconstructWeights } from '../src/core/methods/reconstruct';
import { WasmConvPool } from '../src/core/engine/conv-engine';
import { ImageBatches } from '../src/core/data/batches';
import { writeNpy } from '../src/core/data/npy';
import { randn, rng } from '../src/core/random';
import type { PipelineEvent } from '../src/core/events';

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const ITERS = Number(arg('iters') ?? 30);
const THREADS = (arg('threads') ?? '1,2').split(',').map(Number);
const C = Number(arg('channels') ?? 64);
const HW = Number(arg('hw') ?? 56);
const BATCH = 32;
const STEM_STRIDE = 4;
const IN = HW * STEM_STRIDE;

function basicBlockModel(): ModelProto {
  const g = new GraphWriter(7);
  const stemAttrs = [intsAttr('kernel_shape', [STEM_STRIDE, STEM_STRIDE]), intsAttr('strides', [STEM_STRIDE, STEM_STRIDE])];
  g.inits.push(floatTensor('stem.weight', [C, 3, STEM_STRIDE, STEM_STRIDE], randn(C * 3 * STEM_STRIDE ** 2, rng(1), 0.2)));
  const stem = g.op('Relu', 'stem.relu', [g.op('Conv', 'stem', ['input', 'stem.weight'], stemAttrs)]);
  const a = g.op('Relu', 'block.relu1', [g.convBn('block.conv1', stem, C, C, 3)]);
  const b = g.convBn('block.conv2', a, C, C, 3);
  const out = g.op('Relu', 'block.relu2', [g.op('Add', 'block.add', [b, stem])]);
  g.head(out, C, 10);
  return g.model('basic-block', ['N', 3, IN, IN], 10);
}

async function timeIterations(threads: number): Promise<{ msPerIter: number; gflops: number }> {
  const { model } = canonicalize(basicBlockModel());
  const layers = findQuantLayers(model);
  const blocks = partitionModel(model, 'block').blocks;
  const rand = rng(3);
  const files = Array.from({ length: BATCH }, (_, i) => ({ path: `calib/${i}.npy`, bytes: writeNpy([3, IN, IN], randn(3 * IN * IN, rand, 1)) }));
  const calib = new ImageBatches(files, { size: [IN, IN], channels: 3, mean: [0, 0, 0], std: [1, 1, 1] }, BATCH);
  const convs = new WasmConvPool(threads);
  const stamps: number[] = [];
  const emit = (e: PipelineEvent): void => {
    if (e.type === 'loss' && e.layer.startsWith('block')) stamps.push(performance.now());
  };
  try {
    await reconstructWeights(
      { model, layers, blocks, bitsFor: () => 4, scale: 'lp', weightGrid: 'asymmetric', skip: (l) => l.isFirst || l.isLast, calib, convs, options: { iters: ITERS, batch: BATCH } },
      'brecq',
      null,
      emit,
    );
  } finally {
    await convs.dispose();
  }
  const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!).sort((x, y) => x - y);
  if (gaps.length < 3) throw new Error(`only ${stamps.length} iterations of the block were seen: is it in the partition as 'block…'?`);
  const msPerIter = gaps[Math.floor(gaps.length / 2)]!;
  const flops = 2 * 3 * 2 * BATCH * C * C * 9 * HW * HW;
  return { msPerIter, gflops: flops / (msPerIter * 1e6) };
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
console.log(`basic block ${C}×${HW}², batch ${BATCH}, ${ITERS} iterations, BRECQ W4 (AdaRound rounding, Adam); load average at start ${load()}`);
console.log('| threads | ms / iteration | GFLOP/s (two 3×3 convs, fwd + dx + dW) | speed-up |');
console.log('| ---: | ---: | ---: | ---: |');
let base: number | null = null;
for (const t of THREADS) {
  const r = await timeIterations(t);
  base ??= r.msPerIter;
  console.log(`| ${t} | ${r.msPerIter.toFixed(0)} | ${r.gflops.toFixed(1)} | ${(base / r.msPerIter).toFixed(2)}× |`);
}
console.log(`load average at end: ${load()}`);
