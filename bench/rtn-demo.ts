/**
 * Round-to-nearest on the demo model at several bit widths: accuracy of the float, simulated and
 * exported models, and the time of each pipeline stage. Prints a Markdown table for RESULTS.md.
 * Run: npx tsx bench/rtn-demo.ts [asymmetric|symmetric]   (the weight grid below 8 bits; default asymmetric)
 */
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { runQuantization } from '../src/core/pipeline';
import { readImageFolder } from '../src/cli/files';
import { FASHION_MNIST } from '../src/core/data/preprocess';
import type { Bits } from '../src/core/quant/quantizer';
import { WEIGHT_GRIDS, type WeightGridKind } from '../src/core/plan';

const DEMO = 'public/demo';
const model = new Uint8Array(await readFile(`${DEMO}/model.onnx`));
const calib = await readImageFolder(`${DEMO}/calib`);
const val = await readImageFolder(`${DEMO}/val`);
const configs: [Bits, Bits | null][] = [[8, 8], [8, null], [4, 8], [4, null], [3, 8], [2, 8], [4, 4], [2, 4]];
const weightGrid = (process.argv[2] ?? 'asymmetric') as WeightGridKind;
if (!WEIGHT_GRIDS.includes(weightGrid)) throw new Error(`weight grid: ${WEIGHT_GRIDS.join(' or ')}`);

const pct = (x: number | undefined): string => (x === undefined ? 'n/a' : (x * 100).toFixed(2));
console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`weights ${weightGrid} per channel below 8 bits`);
console.log('| plan | FP top-1 | quantized top-1 | exported top-1 | calibrate s | evaluate (exported) s | total s |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const [wbits, abits] of configs) {
  const t0 = performance.now();
  const { report } = await runQuantization(
    { model, modelName: 'model.onnx', calib, val, preprocess: FASHION_MNIST, plan: { method: 'rtn', wbits, abits, headStem8bit: true, weightGrid } },
    () => {},
  );
  const total = (performance.now() - t0) / 1000;
  console.log(
    `| W${wbits}A${abits ?? 32} | ${pct(report.fp?.top1)} | ${pct(report.quant?.top1)} | ${pct(report.exported?.top1)} | ${report.timings.calibrate?.toFixed(2)} | ${report.timings['exported-eval']?.toFixed(2)} | ${total.toFixed(1)} |`,
  );
}
