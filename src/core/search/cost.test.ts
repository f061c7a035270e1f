import { describe, expect, it } from 'vitest';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { summarizeModel } from '../graph/summary';
import { tinyResNet } from '../testing/tiny-resnet';
import { configCost, costMatrix, costSummary, CostError, layerBitOps, layerCostInfo, layerSizeBytes, parseLatencyTable, uniformBits, type CostContext, type LayerCostInfo } from './cost';

// two hand-built layers: a 3×3 conv 8→16 on a 10×10 output, and a 16→10 linear head
const conv: LayerCostInfo = { name: 'conv', weights: 16 * 8 * 3 * 3, channels: 16, bias: 16, macs: 16 * 8 * 9 * 100 };
const fc: LayerCostInfo = { name: 'fc', weights: 160, channels: 10, bias: 10, macs: 160 };
const ctx: CostContext = { layers: [conv, fc], abits: 8 };

describe('cost formulas on a hand-built example', () => {
  it('size: params·bits/8, a float32 scale and a zero point (int4 up to 4 bits, else int8) per channel, the bias at 32 bits', () => {
    // 1152 weights at 4 bits = 576 B; 16 channels × (4 + 0.5) = 72 B; bias 16 × 4 = 64 B
    expect(layerSizeBytes(conv, 4)).toBe(576 + 72 + 64);
    // at 8 bits: 1152 B; 16 × (4 + 1) = 80 B; 64 B
    expect(layerSizeBytes(conv, 8)).toBe(1152 + 80 + 64);
    // 2 bits: 288 B + 72 B + 64 B
    expect(layerSizeBytes(conv, 2)).toBe(288 + 72 + 64);
    expect(configCost('size', ctx, { conv: 2, fc: 8 })).toBe(288 + 72 + 64 + (160 + 10 * 5 + 40));
  });

  it('BitOPs: Σ MACs · weight bits · activation bits, float activations counting 32', () => {
    expect(layerBitOps(conv, 4, 8)).toBe(115_200 * 32);
    expect(layerBitOps(conv, 2, null)).toBe(115_200 * 64);
    expect(configCost('bitops', ctx, { conv: 4, fc: 2 })).toBe(115_200 * 32 + 160 * 16);
    expect(() => layerBitOps({ ...fc, macs: null }, 4, 8)).toThrow(CostError);
  });

  it('latency: a sum of table look-ups; a table missing a layer or a width is refused with what is missing', () => {
    const table = parseLatencyTable({ device: 'board', layers: { conv: { 2: 0.5, 4: 0.7, 8: 1 }, fc: { 2: 0.01, 4: 0.01, 8: 0.02 } } }, ['conv', 'fc'], [2, 4, 8]);
    expect(table.device).toBe('board');
    const withLatency = { ...ctx, latency: table };
    expect(configCost('latency', withLatency, { conv: 4, fc: 8 })).toBeCloseTo(0.72, 12);
    expect(costMatrix('latency', withLatency, [2, 8])).toEqual([[0.5, 1], [0.01, 0.02]]);
    expect(() => parseLatencyTable({ layers: { conv: { 2: 1, 4: 1, 8: 1 } } }, ['conv', 'fc'], [2, 4, 8])).toThrow(/no row for layer "fc"/);
    expect(() => parseLatencyTable({ layers: { conv: { 2: 1, 8: 1 } } }, ['conv'], [2, 4, 8])).toThrow(/no 4-bit time for layer "conv"/);
    expect(() => parseLatencyTable([], ['conv'], [2])).toThrow(CostError);
    expect(() => configCost('latency', ctx, { conv: 4, fc: 8 })).toThrow(/needs a latency table/);
  });

  it('the cost matrix and the summary agree with the per-layer formulas', () => {
    const m = costMatrix('size', ctx, [2, 4, 8]);
    expect(m[0]).toEqual([2, 4, 8].map((b) => layerSizeBytes(conv, b as 2 | 4 | 8)));
    const s = costSummary(ctx, uniformBits(ctx.layers, 4));
    expect(s.sizeBytes).toBe(m[0]![1]! + m[1]![1]!);
    expect(s.bitops).toBe((115_200 + 160) * 32);
    expect(s.latencyMs).toBeNull();
  });
});

describe('layerCostInfo on a model', () => {
  it('splits parameters into weights and bias and takes MACs from the model summary', () => {
    const { model } = canonicalize(tinyResNet(2, { channels: 4, size: 8 }));
    const layers = findQuantLayers(model);
    const info = layerCostInfo(model, layers);
    const summary = summarizeModel(model);
    expect(info.map((l) => l.name)).toEqual(layers.map((l) => l.name));
    info.forEach((l, i) => {
      expect(l.weights + l.bias).toBe(layers[i]!.params);
      expect(l.macs).toBe(summary.layers[i]!.macs);
      expect(l.channels).toBe(layers[i]!.weightDims[layers[i]!.channelAxis]);
    });
  });
});
