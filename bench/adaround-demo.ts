/**
 * AdaRound against round-to-nearest on the demo model, at 4, 3 and 2 weight bits with 8-bit
 * activations (first and last layers at 8 bits), and the speed of the reconstruction loop.
 * Run: node --experimental-wasm-relaxed-simd --import tsx bench/adaround-demo.ts [iters]
 */
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { runQuantization } from '../src/core/pipeline';
import { readImageFolder } from '../src/cli/files';
import { FASHION_MNIST } from '../src/core/data/preprocess';
import { summarizeModel } from '../src/core/graph/summary';
import { decodeModel } from '../src/core/onnx/codec';
import type { Bits } from '../src/core/quant/quantizer';
import type { MethodName } from '../src/core/plan';

const DEMO = 'public/demo';
const iters = Number(process.argv[2] ?? 1000);
const model = new Uint8Array(await readFile(`${DEMO}/model.onnx`));
const calib = await readImageFolder(`${DEMO}/calib`);
const val = await readImageFolder(`${DEMO}/val`);
const summary = summarizeModel(decodeModel(model));
// forward + weight gradient of every reconstructed layer, batch 32: 2 · 2 · MACs · 32 flops per iteration
const flopsPerIter = 4 * (summary.macs ?? 0) * 32;

const pct = (x: number | undefined): string => (x === undefined ? 'n/a' : (x * 100).toFixed(2));
console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}; load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${iters} iterations per layer, batch 32`);
console.log('| plan | method | quantized top-1 | exported top-1 | quantize s | ms / iteration (all layers) | GFLOP/s |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const wbits of [4, 3, 2] as Bits[]) {
  for (const method of ['rtn', 'adaround'] as MethodName[]) {
    const { report } = await runQuantization(
      { model, modelName: 'model.onnx', calib, val, preprocess: FASHION_MNIST, plan: { method, wbits, abits: 8, headStem8bit: true, iters, seed: 0 } },
      () => {},
    );
    const q = report.timings.quantize ?? 0;
    const perIter = method === 'adaround' ? (q * 1000) / iters : NaN;
    console.log(
      `| W${wbits}A8 | ${method} | ${pct(report.quant?.top1)} | ${pct(report.exported?.top1)} | ${q.toFixed(1)} | ${Number.isNaN(perIter) ? '' : perIter.toFixed(1)} | ${Number.isNaN(perIter) ? '' : (flopsPerIter / (perIter / 1000) / 1e9).toFixed(1)} |`,
    );
  }
}
console.log(`FP top-1 on the same 1000 images: see any row's report; load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
