/**
 * The methods' quality table on the demo model (issue 5): top-1 of every method at every
 * weight/activation setting, with the head and stem at 8 bits, and each run's wall time.
 *
 * Run: node --experimental-wasm-relaxed-simd --import tsx bench/methods.ts [--calib N] [--iters N]
 *        [--methods rtn,adaround,brecq,brecq-fisher,qdrop,nwq,decoupleq] [--configs W8A8,W4A32,…]
 *        [--weight-grid asymmetric|symmetric]
 * Iterations apply per layer (AdaRound), per block (BRECQ, QDrop; activation-step pass gets a
 * quarter), to the whole network (NWQ) and to decoupleQ's float refinement per block; the
 * references use 10,000–20,000, which this 2-core machine cannot afford for the whole table.
 * --log writes each run's info lines (per-block SQNR, share of decided rounding) to stderr.
 * Up to 256 calibration images come from the demo's calib/ folder; more (e.g. --calib 1024) are a
 * seeded sample of Debian's Fashion-MNIST training set (bench/fmnist-train.ts).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { runQuantization } from '../src/core/pipeline';
import { readImageFolder } from '../src/cli/files';
import { sampleImages } from '../src/core/data/sample';
import { FASHION_MNIST } from '../src/core/data/preprocess';
import { fmnistTrainImages } from './fmnist-train';
import type { Bits } from '../src/core/quant/quantizer';
import type { MethodName, QuantPlan, WeightGridKind } from '../src/core/plan';

const { values } = parseArgs({
  options: {
    calib: { type: 'string', default: '256' },
    iters: { type: 'string', default: '500' },
    methods: { type: 'string', default: 'rtn,adaround,brecq,brecq-fisher,qdrop,nwq,decoupleq' },
    configs: { type: 'string', default: 'W8A8,W4A32,W3A32,W2A32,W4A8,W4A4,W2A4' },
    // one kernel thread keeps timings steady on a shared machine; results do not depend on it
    threads: { type: 'string', default: '1' },
    'weight-grid': { type: 'string', default: 'asymmetric' },
    // the runs' info lines (per-block SQNR, share of decided rounding) go to stderr
    log: { type: 'boolean', default: false },
  },
});
const DEMO = 'public/demo';
const iters = Number(values.iters);
const model = new Uint8Array(await readFile(`${DEMO}/model.onnx`));
const allCalib = await readImageFolder(`${DEMO}/calib`);
const wanted = Number(values.calib);
const calib = wanted <= allCalib.length ? sampleImages(allCalib, wanted, 0) : fmnistTrainImages(wanted, 0);
const val = await readImageFolder(`${DEMO}/val`);

const pct = (x: number | undefined): string => (x === undefined ? 'n/a' : (x * 100).toFixed(2));
console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}; load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`${calib.length} calibration images (${wanted <= allCalib.length ? 'the demo’s calib/' : 'Fashion-MNIST training set'}), ${iters} iterations (see the header of bench/methods.ts), seed 0, 8-bit head and stem, weights ${values['weight-grid']} below 8 bits`);
console.log('| config | method | quantized top-1 | exported top-1 | FP top-1 | wall s |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const config of values.configs!.split(',')) {
  const m = /^W(\d)A(\d+)$/.exec(config);
  if (!m) throw new Error(`bad config ${config}`);
  const wbits = Number(m[1]) as Bits;
  const abits = m[2] === '32' ? null : (Number(m[2]) as Bits);
  for (const name of values.methods!.split(',')) {
    const method = (name === 'brecq-fisher' ? 'brecq' : name) as MethodName;
    const plan: QuantPlan = {
      method,
      wbits,
      abits,
      headStem8bit: true,
      weightGrid: values['weight-grid'] as WeightGridKind,
      seed: 0,
      ...(method === 'rtn' ? {} : { iters }),
      ...(method === 'brecq' ? { actIters: Math.max(1, Math.floor(iters / 4)) } : {}),
      ...(name === 'brecq-fisher' ? { fisher: true } : {}),
    };
    const t0 = performance.now();
    const { report } = await runQuantization({ model, modelName: 'model.onnx', calib, val, preprocess: FASHION_MNIST, plan, threads: values.threads === 'auto' ? 'auto' : Number(values.threads) }, (e) => {
      if (values.log && e.type === 'info') process.stderr.write(`${config} ${name}: ${e.message}\n`);
    });
    const wall = (performance.now() - t0) / 1000;
    console.log(`| ${config} | ${name} | ${pct(report.quant?.top1)} | ${pct(report.exported?.top1)} | ${pct(report.fp?.top1)} | ${wall.toFixed(0)} |`);
  }
}
console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
