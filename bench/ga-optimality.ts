/**
 * How often the genetic search (src/core/search/genetic.ts) reaches the exact optimum of the proxy
 * under a size budget, found by brute force over all 3^10 configurations: the demo model's cheap
 * sensitivity table (64 calibration images) and four random tables with 10 layers, at 31 budgets
 * from the cheapest to the dearest configuration, seeds 0–5; with and without the greedy seeds.
 *
 * Run: node --experimental-wasm-relaxed-simd --import tsx bench/ga-optimality.ts
 */
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { readImageFolder } from '../src/cli/files';
import { FASHION_MNIST } from '../src/core/data/preprocess';
import { ImageBatches } from '../src/core/data/batches';
import { sampleImages } from '../src/core/data/sample';
import { decodeModel } from '../src/core/onnx/codec';
import { canonicalize } from '../src/core/graph/canonicalize';
import { findQuantLayers } from '../src/core/graph/layers';
import { partitionModel } from '../src/core/graph/partition';
import { WasmConvPool } from '../src/core/engine/conv-engine';
import { rng } from '../src/core/random';
import type { Bits } from '../src/core/quant/quantizer';
import { measureSensitivity, type SensitivityTable } from '../src/core/search/sensitivity';
import { costMatrix, layerCostInfo, layerSizeBytes } from '../src/core/search/cost';
import { geneticSearch, mixedPrecisionSpace, type MixedPrecisionSpace } from '../src/core/search/genetic';

console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}; load average: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const bits: Bits[] = [2, 4, 8];

const { model } = canonicalize(decodeModel(new Uint8Array(await readFile('public/demo/model.onnx'))));
const layers = findQuantLayers(model);
const calib = sampleImages(await readImageFolder('public/demo/calib'), 64, 0);
const demoTable = await measureSensitivity({ model, layers, blocks: partitionModel(model).blocks, calib: new ImageBatches(calib, FASHION_MNIST, 32), convs: new WasmConvPool() }, { mode: 'cheap', bits });
const problems: { name: string; space: MixedPrecisionSpace }[] = [{ name: 'demo', space: mixedPrecisionSpace(demoTable, costMatrix('size', { layers: layerCostInfo(model, layers), abits: 8 }, bits)) }];

// random tables: losses falling with bits, same-block pair terms of either sign, layer sizes spread over 100–40,000 weights
for (let s = 1; s <= 4; s++) {
  const rand = rng(100 + s);
  const rows = Array.from({ length: 10 }, (_, i) => {
    const v = 0.01 + rand() ** 3;
    const loss = [v, v * (0.02 + 0.1 * rand()), v * 0.001];
    return { name: `l${i}`, block: `b${Math.floor(i / 3)}`, loss, delta: loss.map((x) => x - 0.001) };
  });
  const blocks = [...new Set(rows.map((l) => l.block))].map((id) => ({ id, layers: rows.filter((l) => l.block === id).map((l) => l.name), base: 0.001 }));
  const pairs = blocks.flatMap((b) => b.layers.flatMap((a, i) => b.layers.slice(i + 1).map((c) => ({ block: b.id, a, b: c, bits: 2 as Bits, loss: 0, extra: (rand() - 0.3) * 0.3 }))));
  const table: SensitivityTable = { ...demoTable, label: 'random', blocks, layers: rows, pairs };
  const cost = rows.map(() => {
    const info = { name: '', weights: Math.floor(100 + rand() ** 2 * 40000), channels: 16, bias: 16, macs: 1 };
    return bits.map((b) => layerSizeBytes(info, b));
  });
  problems.push({ name: `random ${s}`, space: mixedPrecisionSpace(table, cost) });
}

console.log('| table | greedy seeds | runs | optimum reached | worst proxy / optimum | ms per search |');
console.log('| --- | --- | --: | --: | --: | --: |');
for (const { name, space } of problems) {
  // every configuration, by cost, with the running minimum of the proxy
  const n = space.options.length;
  const all: { cost: number; loss: number }[] = [];
  const g = new Array<number>(n).fill(0);
  for (let code = 0; code < 3 ** n; code++) {
    let c = code;
    let cost = 0;
    for (let i = 0; i < n; i++) {
      g[i] = c % 3;
      c = Math.floor(c / 3);
      cost += space.cost[i]![g[i]!]!;
    }
    all.push({ cost, loss: space.loss(g) });
  }
  all.sort((a, b) => a.cost - b.cost);
  const lo = all[0]!.cost;
  const hi = all.at(-1)!.cost;
  const budgets = Array.from({ length: 31 }, (_, s) => lo + ((hi - lo) * s) / 30);
  let k = 0;
  let best = Infinity;
  const exact = budgets.map((b) => {
    while (k < all.length && all[k]!.cost <= b) best = Math.min(best, all[k++]!.loss);
    return best;
  });
  for (const greedy of [true, false]) {
    let hits = 0;
    let runs = 0;
    let worst = 1;
    const t0 = performance.now();
    budgets.forEach((b, i) => {
      for (let seed = 0; seed < 6; seed++) {
        const r = geneticSearch(space, b, { seed, greedy });
        runs++;
        if (r.loss <= exact[i]! + 1e-12) hits++;
        else worst = Math.max(worst, r.loss / exact[i]!);
      }
    });
    console.log(`| ${name} | ${greedy ? 'yes' : 'no'} | ${runs} | ${hits} | ${worst.toFixed(3)} | ${((performance.now() - t0) / runs).toFixed(0)} |`);
  }
}
