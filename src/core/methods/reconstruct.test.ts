import { describe, expect, it } from 'vitest';
import { syntheticBatches } from '../testing/synthetic-batches';
import { canonicalize } from '../graph/canonicalize';
import { activationQuantPoints, findQuantLayers } from '../graph/layers';
import { partitionModel } from '../graph/partition';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import type { ImageBatches } from '../data/batches';
import { minMaxPerTensor, type QuantParams } from '../quant/quantizer';
import { collectRanges } from '../quant/calibrate';
import { WasmConvPool } from '../engine/conv-engine';
import type { PipelineEvent } from '../events';
import { reconstructWeights, type ReconstructionInput } from './reconstruct';


function setup(iters: number, lr = 1e-3) {
  const { model } = canonicalize(tinyResNet(4, { channels: 6, size: 8 }));
  const layers = findQuantLayers(model);
  const input: ReconstructionInput = {
    model,
    layers,
    blocks: partitionModel(model, 'block').blocks,
    bitsFor: () => 2,
    scale: 'lp',
    weightGrid: 'asymmetric',
    skip: () => false,
    calib: syntheticBatches(64, [1, 8, 8], 3),
    convs: new WasmConvPool(),
    options: { iters, seed: 1, lr },
  };
  return { model, layers, input };
}

describe('block reconstruction (BRECQ)', () => {
  it('lowers the block output error below round-to-nearest on the same grid, and settles the rounding', async () => {
    // a short run with a 10× learning rate (the reference runs 20,000 iterations at 1e-3), to fit a unit test
    const rtn = await reconstructWeights(setup(0).input, 'brecq', null, () => {}, undefined);
    const events: PipelineEvent[] = [];
    const learned = await reconstructWeights(setup(1000, 1e-2).input, 'brecq', null, (e) => events.push(e), undefined);
    expect(learned.blocks.map((b) => b.block)).toEqual(rtn.blocks.map((b) => b.block));
    // 0 iterations = V at its initialisation = nearest rounding: the baseline
    learned.blocks.forEach((b, i) => expect(b.sqnrDb, `block ${b.block}`).toBeGreaterThan(rtn.blocks[i]!.sqnrDb - 0.1));
    expect(learned.blocks.at(-1)!.sqnrDb).toBeGreaterThan(rtn.blocks.at(-1)!.sqnrDb + 1);
    expect(learned.blocks.slice(1).reduce((a, b) => a + b.sqnrDb, 0)).toBeGreaterThan(rtn.blocks.slice(1).reduce((a, b) => a + b.sqnrDb, 0) + 3);
    // the regulariser drives h(V) to 0 or 1: far more variables settled than at the start
    learned.blocks.forEach((b, i) => expect(b.decided!).toBeGreaterThan(Math.max(0.4, 10 * rtn.blocks[i]!.decided!)));
    // losses were reported, and the codes are on the 2-bit grid
    expect(events.some((e) => e.type === 'loss')).toBe(true);
    for (const w of learned.weights) for (const c of w.codes) expect(c >= 0 && c <= 3).toBe(true);
  }, 180_000);

  it('with Fisher weighting (the paper’s loss) it also beats round-to-nearest at the network output', async () => {
    const rtn = await reconstructWeights(setup(0).input, 'brecq', null, () => {}, undefined);
    const { input } = setup(1000, 1e-2);
    const fisher = await reconstructWeights({ ...input, options: { ...input.options, fisher: true } }, 'brecq', null, () => {}, undefined);
    expect(fisher.blocks.at(-1)!.sqnrDb).toBeGreaterThan(rtn.blocks.at(-1)!.sqnrDb + 1);
  }, 180_000);

  it('QDrop learns activation step sizes jointly and keeps them positive', async () => {
    const { model, input } = setup(200);
    const points = activationQuantPoints(model);
    const ranges = await collectRanges(model, points, input.calib);
    const init = new Map<string, QuantParams>([...ranges].map(([t, r]) => [t, minMaxPerTensor(r.min, r.max, 4, false, false)]));
    const result = await reconstructWeights(input, 'qdrop', init, () => {}, undefined);
    const moved = [...result.activations].filter(([t, p]) => p.scale[0] !== init.get(t)!.scale[0]);
    expect(moved.length).toBeGreaterThan(0);
    for (const [, p] of result.activations) expect(p.scale[0]!).toBeGreaterThan(0);
    // zero points are not learned (§1.1)
    for (const [t, p] of result.activations) expect(p.zeroPoint[0]).toBe(init.get(t)!.zeroPoint[0]);
  }, 120_000);
});
