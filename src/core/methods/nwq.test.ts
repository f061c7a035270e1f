import { describe, expect, it } from 'vitest';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { partitionModel } from '../graph/partition';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import type { ImageBatches } from '../data/batches';
import { WasmConvPool } from '../engine/conv-engine';
import type { PipelineEvent } from '../events';
import { mixAt, NWQ_DEFAULTS, nwqModel, tauAt } from './nwq';

describe('NWQ', () => {
  it('anneals τ linearly from 1 to 0.01 and the mixup probability from 0.5 to 0 (§5.1)', () => {
    const o = { ...NWQ_DEFAULTS, iters: 101 };
    expect(tauAt(0, o)).toBe(1);
    expect(tauAt(50, o)).toBeCloseTo(0.505, 12);
    expect(tauAt(100, o)).toBeCloseTo(0.01, 12);
    expect(mixAt(0, o)).toBe(0.5);
    expect(mixAt(50, o)).toBeCloseTo(0.25, 12);
    expect(mixAt(100, o)).toBe(0);
  });

  it('starts from the float network (soft weights equal the float ones) and ends below nearest rounding', async () => {
    const { model } = canonicalize(tinyResNet(6, { channels: 4, size: 8 }));
    const layers = findQuantLayers(model);
    const all = randn(48 * 64, rng(1));
    const calib = { batches: 3, batch: async (b: number) => ({ data: all.slice(b * 16 * 64, (b + 1) * 16 * 64), shape: [16, 1, 8, 8] }) } as unknown as ImageBatches;
    const events: PipelineEvent[] = [];
    const input = { model, layers, blocks: partitionModel(model, 'block').blocks, bitsFor: () => 8 as const, scale: 'minmax' as const, weightGrid: 'asymmetric' as const, calib, convs: new WasmConvPool(), options: { iters: 1, seed: 2 } };
    // 8-bit weights, activations float, τ = 1: the loss at step 0 is only the 8-bit grid's rounding noise … tiny
    await nwqModel(input, null, (e) => events.push(e), undefined);
    const first = events.find((e) => e.type === 'loss');
    expect(first && first.type === 'loss' && first.rec).toBeLessThan(1e-3);
    // at 2 bits: the loss of nearest rounding (τ already at its end, so the soft weights are hard) …
    const nearest: PipelineEvent[] = [];
    await nwqModel({ ...input, bitsFor: () => 2 as const, options: { iters: 1, seed: 2, tauStart: 0.01, tauEnd: 0.01 } }, null, (e) => nearest.push(e), undefined);
    const rtn = nearest.flatMap((e) => (e.type === 'loss' ? [e.rec] : []))[0]!;
    // … and where the annealed optimisation ends (τ → 0.01: the rounding is decided)
    const learned: PipelineEvent[] = [];
    await nwqModel({ ...input, bitsFor: () => 2 as const, options: { iters: 300, seed: 2, lr: 1e-2 } }, null, (e) => learned.push(e), undefined);
    const losses = learned.flatMap((e) => (e.type === 'loss' ? [e.rec] : []));
    const tail = losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
    // the soft start is the float weight except where the rounded zero point pushes a channel's extreme off the grid (at most half a step)
    expect(losses[0]!).toBeLessThan(0.2 * rtn);
    expect(tail).toBeLessThan(0.8 * rtn);
  }, 120_000);
});
