/**
 * Mixed precision against uniform precision on the demo model (algorithms.md §3.5): the genetic
 * search on cheap (round-to-nearest) sensitivities, with candidates {2,4,8} and {2,3,4,8}, at the
 * size of uniform W3 and at the size of uniform W2 + 10%, each plan then quantized with AdaRound
 * (and round-to-nearest) and evaluated on the 1,000 validation images, beside uniform plans of
 * equal or higher size. Activations at 8 bits everywhere (min–max, per tensor).
 *
 * Run: node --experimental-wasm-relaxed-simd --import tsx bench/mixed-precision.ts [adaround iters per layer, default 300]
 * Prints markdown for bench/RESULTS.md.
 */
import { readFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { runQuantization } from '../src/core/pipeline';
import { readImageFolder } from '../src/cli/files';
import { FASHION_MNIST } from '../src/core/data/preprocess';
import { ImageBatches } from '../src/core/data/batches';
import { decodeModel } from '../src/core/onnx/codec';
import { canonicalize } from '../src/core/graph/canonicalize';
import { findQuantLayers } from '../src/core/graph/layers';
import { partitionModel } from '../src/core/graph/partition';
import { WasmConvPool } from '../src/core/engine/conv-engine';
import type { Bits } from '../src/core/quant/quantizer';
import type { QuantPlan } from '../src/core/plan';
import { measureSensitivity, proxyLoss, type SensitivityTable } from '../src/core/search/sensitivity';
import { configCost, costMatrix, layerCostInfo, uniformBits, type CostContext } from '../src/core/search/cost';
import { geneticSearch, layerBitsOf, mixedPrecisionSpace } from '../src/core/search/genetic';

const DEMO = 'public/demo';
const iters = Number(process.argv[2] ?? 300);
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const t00 = performance.now();
console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; load average at start: ${load()}`);

const bytes = new Uint8Array(await readFile(`${DEMO}/model.onnx`));
const calib = await readImageFolder(`${DEMO}/calib`);
const val = await readImageFolder(`${DEMO}/val`);
const { model } = canonicalize(decodeModel(bytes));
const layers = findQuantLayers(model);
const names = layers.map((l) => l.name);
const ctx: CostContext = { layers: layerCostInfo(model, layers), abits: 8 };
const bits: Bits[] = [2, 4, 8];

// 1. sensitivities (cheap: round-to-nearest with Lp steps), all 256 calibration images, for two candidate sets
const batches = new ImageBatches([...calib].sort((a, b) => a.path.localeCompare(b.path)), FASHION_MNIST, 32);
const blocks = partitionModel(model, 'block').blocks;
const convs = new WasmConvPool();
const candidateSets: Bits[][] = [[2, 4, 8], [2, 3, 4, 8]];
const tables: { bits: Bits[]; table: SensitivityTable; seconds: number }[] = [];
for (const bits of candidateSets) {
  const t0 = performance.now();
  tables.push({ bits, table: await measureSensitivity({ model, layers, blocks, calib: batches, convs }, { mode: 'cheap', bits }), seconds: (performance.now() - t0) / 1000 });
}

// 2. budgets and the genetic search; the proxy optimum checked by brute force (every configuration)
const size = (lb: Record<string, Bits>): number => configCost('size', ctx, lb);
const headStem = (b: Bits): Record<string, Bits> => Object.fromEntries(layers.map((l) => [l.name, l.isFirst || l.isLast ? 8 : b])) as Record<string, Bits>;
const budgets = [
  { label: 'W2 size + 10%', value: 1.1 * size(uniformBits(layers, 2)) },
  { label: 'W3 size', value: size(uniformBits(layers, 3)) },
];
const searched = budgets.map((b) =>
  tables.map(({ bits, table }) => {
    const space = mixedPrecisionSpace(table, costMatrix('size', ctx, bits));
    const t = performance.now();
    const r = geneticSearch(space, b.value, { seed: 0 });
    const gaSeconds = (performance.now() - t) / 1000;
    const K = bits.length;
    let exact = Infinity;
    const g = new Array<number>(names.length).fill(0);
    for (let code = 0; code < K ** names.length; code++) {
      let c = code;
      let cost = 0;
      for (let i = 0; i < names.length; i++) {
        g[i] = c % K;
        c = Math.floor(c / K);
        cost += space.cost[i]![g[i]!]!;
      }
      if (cost <= b.value) exact = Math.min(exact, space.loss(g));
    }
    return { label: `MP {${bits.join(',')}} @ ${b.label}`, budget: b.value, layerBits: layerBitsOf(space, r.genome), proxy: r.loss, exact, gaSeconds };
  }),
);

// 3. quantize and evaluate every plan
interface Row { label: string; layerBits: Record<string, Bits> }
const rows: Row[] = [
  { label: 'W2 uniform', layerBits: uniformBits(layers, 2) },
  { label: 'W2, first/last 8', layerBits: headStem(2) },
  ...searched[0]!,
  { label: 'W3 uniform', layerBits: uniformBits(layers, 3) },
  { label: 'W3, first/last 8', layerBits: headStem(3) },
  ...searched[1]!,
  { label: 'W4 uniform', layerBits: uniformBits(layers, 4) },
];
const pct = (x: number | undefined | null): string => (x == null ? 'n/a' : (x * 100).toFixed(2));
const results: string[] = [];
let fp: number | undefined;
for (const row of rows) {
  const top1: Record<string, string> = {};
  let quantSeconds = 0;
  for (const method of ['rtn', 'adaround'] as const) {
    const plan: QuantPlan = { method, wbits: 8, abits: 8, headStem8bit: false, layerBits: row.layerBits, scale: 'lp', iters, seed: 0 };
    const { report } = await runQuantization({ model: bytes, modelName: 'model.onnx', calib, val, preprocess: FASHION_MNIST, plan }, () => {});
    fp = report.fp?.top1;
    top1[method] = pct(report.quant?.top1);
    if (report.exported?.top1 !== report.quant?.top1) top1[method] += ` (exported ${pct(report.exported?.top1)})`;
    if (method === 'adaround') quantSeconds = report.timings.quantize ?? 0;
  }
  // the proxy of the {2,3,4,8} table, which covers every plan here
  const proxy = proxyLoss(tables[1]!.table, row.layerBits).toPrecision(3);
  results.push(`| ${row.label} | ${names.map((n) => row.layerBits[n]).join(' ')} | ${(size(row.layerBits) / 1000).toFixed(2)} | ${(configCost('bitops', ctx, row.layerBits) / 1e9).toFixed(3)} | ${proxy} | ${top1.rtn} | ${top1.adaround} | ${quantSeconds.toFixed(0)} |`);
  console.error(`${row.label} done (${((performance.now() - t00) / 1000).toFixed(0)} s, load ${load()})`);
}

console.log(`\nFP top-1: ${pct(fp)}`);
for (const t of tables) console.log(`sensitivity table {${t.bits.join(',')}} (${t.table.label}, 256 images): ${t.seconds.toFixed(1)} s`);
for (const s of searched.flat()) console.log(`${s.label}: budget ${(s.budget / 1000).toFixed(2)} kB; GA proxy ${s.proxy.toPrecision(4)}, brute-force optimum ${s.exact.toPrecision(4)}${s.proxy === s.exact ? ' (equal)' : ''}; GA ${(s.gaSeconds * 1000).toFixed(0)} ms`);
console.log(`\nlayers: ${names.join(', ')}\n`);
console.log(`| plan | weight bits by layer | size kB | GBitOPs (A8) | proxy ({2,3,4,8} table) | RTN (Lp) top-1 | AdaRound ${iters} it. top-1 | AdaRound quantize s |`);
console.log('| --- | --- | --: | --: | --: | --: | --: | --: |');
for (const r of results) console.log(r);
console.log(`\ntotal ${((performance.now() - t00) / 60000).toFixed(1)} min; load average at the end: ${load()}`);
