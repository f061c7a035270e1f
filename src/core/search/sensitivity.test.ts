import { beforeAll, describe, expect, it } from 'vitest';
import { syntheticBatches } from '../testing/synthetic-batches';
import { readFile } from 'node:fs/promises';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { partitionModel } from '../graph/partition';
import { decodeModel } from '../onnx/codec';
import { ImageBatches } from '../data/batches';
import { FASHION_MNIST } from '../data/preprocess';
import { sampleImages } from '../data/sample';
import { WasmConvPool } from '../engine/conv-engine';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import { readImageFolder } from '../../cli/files';
import { compileProxy, measureSensitivity, proxyLoss, type SensitivityTable } from './sensitivity';
import type { SearchEvent } from './events';


/** Every pair of layers that share a block, and only those. */
function sameBlockPairs(table: SensitivityTable): string[] {
  return table.blocks.flatMap((b) => b.layers.flatMap((a, i) => b.layers.slice(i + 1).map((c) => `${a}|${c}`)));
}

describe('sensitivity on the demo model, cheap mode', () => {
  let table: SensitivityTable;
  const events: SearchEvent[] = [];

  beforeAll(async () => {
    const { model } = canonicalize(decodeModel(new Uint8Array(await readFile('public/demo/model.onnx'))));
    const calib = sampleImages(await readImageFolder('public/demo/calib'), 64, 0);
    table = await measureSensitivity(
      { model, layers: findQuantLayers(model), blocks: partitionModel(model, 'block').blocks, calib: new ImageBatches(calib, FASHION_MNIST, 32), convs: new WasmConvPool() },
      { mode: 'cheap' },
      (e) => events.push(e),
    );
  }, 300_000);

  it('tabulates every layer at 2, 4 and 8 bits, labelled as round-to-nearest', () => {
    expect(table.label).toBe('cheap (round-to-nearest)');
    expect(table.bits).toEqual([2, 4, 8]);
    expect(table.layers).toHaveLength(10);
    expect(table.images).toBe(64);
    for (const l of table.layers) {
      expect(l.loss).toHaveLength(3);
      for (const v of l.loss) expect(Number.isFinite(v) && v >= 0).toBe(true);
      // the highest candidate is the reference: its diagonal term is zero
      expect(l.delta[2]).toBe(0);
    }
    expect(events.at(-1)).toMatchObject({ type: 'progress', phase: 'sensitivity' });
  });

  it('is monotone: lowering a layer to 2 bits costs more than to 4, which costs more than 8', () => {
    for (const l of table.layers) {
      expect(l.loss[0]).toBeGreaterThan(l.loss[1]!);
      expect(l.loss[1]).toBeGreaterThanOrEqual(l.loss[2]!);
      // 2 bits is far worse than 4 on every layer of this model (an order of magnitude and more)
      expect(l.loss[0]! / l.loss[1]!).toBeGreaterThan(5);
    }
  });

  it('measures pair terms at 2 bits for pairs within a block only', () => {
    expect(table.pairBits).toBe(2);
    const blockOf = new Map(table.layers.map((l) => [l.name, l.block]));
    for (const p of table.pairs) {
      expect(blockOf.get(p.a)).toBe(p.block);
      expect(blockOf.get(p.b)).toBe(p.block);
    }
    // layer1: 2 layers → 1 pair; layer2 and layer3: 3 layers → 3 pairs each; stem and head: none
    expect(table.pairs.map((p) => `${p.a}|${p.b}`)).toEqual(sameBlockPairs(table));
    expect(table.pairs).toHaveLength(7);
  });

  it('is plain JSON, and the proxy sums bases, diagonal and pair terms', () => {
    const copy = JSON.parse(JSON.stringify(table)) as SensitivityTable;
    expect(copy).toEqual(table);
    const names = table.layers.map((l) => l.name);
    const base = table.blocks.reduce((a, b) => a + b.base, 0);
    expect(proxyLoss(copy, Object.fromEntries(names.map((n) => [n, 8])))).toBeCloseTo(base, 15);
    // layer2's first two convolutions at 2 bits: their diagonal terms plus their pair term
    const all2 = Object.fromEntries(names.map((n) => [n, 8 as const])) as Record<string, 2 | 4 | 8>;
    all2['/layer2/conv1/Conv'] = 2;
    all2['/layer2/conv2/Conv'] = 2;
    all2['/layer3/conv1/Conv'] = 4;
    const d = (n: string, k: number) => table.layers.find((l) => l.name === n)!.delta[k]!;
    const pair = table.pairs.find((p) => p.a === '/layer2/conv1/Conv' && p.b === '/layer2/conv2/Conv')!;
    expect(proxyLoss(table, all2)).toBeCloseTo(base + d('/layer2/conv1/Conv', 0) + d('/layer2/conv2/Conv', 0) + pair.extra + d('/layer3/conv1/Conv', 1), 12);
    expect(compileProxy(table)(names.map((n) => table.bits.indexOf(all2[n]!)))).toBeCloseTo(proxyLoss(table, all2), 15);
    expect(() => proxyLoss(table, { ...all2, '/fc/Gemm': 3 })).toThrow(/not a candidate/);
  });
});

describe('sensitivity, reconstructed mode (tiny ResNet)', () => {
  it('reconstructs each entry with BRECQ for the given iterations, and keeps pairs within blocks', async () => {
    const { model } = canonicalize(tinyResNet(4, { channels: 4, size: 8 }));
    const layers = findQuantLayers(model);
    const blocks = partitionModel(model, 'block').blocks;
    const input = { model, layers, blocks, calib: syntheticBatches(32, [1, 8, 8], 3), convs: new WasmConvPool() };
    const rec = await measureSensitivity(input, { mode: 'reconstructed', bits: [2, 8], iters: 4, seed: 1 });
    const cheap = await measureSensitivity(input, { mode: 'cheap', bits: [2, 8] });
    expect(rec.label).toBe('reconstructed (BRECQ, 4 iterations)');
    expect(rec.iters).toBe(4);
    expect(rec.layers.map((l) => l.name)).toEqual(layers.map((l) => l.name));
    for (const t of [rec, cheap]) {
      expect(t.pairs.map((p) => `${p.a}|${p.b}`)).toEqual(sameBlockPairs(t));
      for (const l of t.layers) expect(l.loss[0]).toBeGreaterThan(l.loss[1]!);
    }
    // a different measurement: the reconstructed entries are not the round-to-nearest ones
    expect(rec.layers.map((l) => l.loss[0])).not.toEqual(cheap.layers.map((l) => l.loss[0]));
  }, 300_000);
});
