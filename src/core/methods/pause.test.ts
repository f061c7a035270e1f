import { describe, expect, it } from 'vitest';
import { syntheticBatches } from '../testing/synthetic-batches';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { partitionModel } from '../graph/partition';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import type { ImageBatches } from '../data/batches';
import { WasmConvPool } from '../engine/conv-engine';
import { PauseGate, type PipelineEvent } from '../events';
import { reconstructWeights, type ReconstructionInput } from './reconstruct';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


function input(): ReconstructionInput {
  const { model } = canonicalize(tinyResNet(4, { channels: 6, size: 8 }));
  return {
    model,
    layers: findQuantLayers(model),
    blocks: partitionModel(model, 'block').blocks,
    bitsFor: () => 2,
    scale: 'lp',
    weightGrid: 'asymmetric',
    skip: () => false,
    calib: syntheticBatches(64, [1, 8, 8], 3),
    convs: new WasmConvPool(),
    options: { iters: 600, seed: 1, lr: 1e-2 },
  };
}

describe('pause and resume of a reconstruction', () => {
  it('BRECQ paused in its first block holds, and after resume ends with the codes and metrics of an uninterrupted run', async () => {
    const straight = await reconstructWeights(input(), 'brecq', null, () => {}, undefined);

    const controller = new AbortController();
    const gate = new PauseGate(controller.signal);
    const losses: PipelineEvent[] = [];
    let paused: Promise<void> | null = null;
    const run = reconstructWeights(
      input(),
      'brecq',
      null,
      (e) => {
        if (e.type !== 'loss') return;
        losses.push(e);
        // pause as soon as the first block reports a loss: mid-optimisation, with Adam state live
        paused ??= gate.pause();
      },
      controller.signal,
    );
    while (!paused) await sleep(5);
    await paused;
    expect(gate.holding).toBe(true);
    const seen = losses.length;
    const firstBlock = (losses[0] as { layer: string }).layer;
    await sleep(300);
    // nothing ran while paused, and the run was stopped inside its first block
    expect(losses.length).toBe(seen);
    expect((losses.at(-1) as { layer: string }).layer).toBe(firstBlock);
    gate.resume();
    const resumed = await run;
    gate.close();

    expect(resumed.weights.map((w) => w.layer.name)).toEqual(straight.weights.map((w) => w.layer.name));
    resumed.weights.forEach((w, i) => expect(Array.from(w.codes), w.layer.name).toEqual(Array.from(straight.weights[i]!.codes)));
    expect(resumed.blocks.map((b) => [b.block, b.sqnrDb, b.cosine])).toEqual(straight.blocks.map((b) => [b.block, b.sqnrDb, b.cosine]));
  }, 240_000);
});
