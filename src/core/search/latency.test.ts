import { describe, expect, it } from 'vitest';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { decodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import { tinyResNet } from '../testing/tiny-resnet';
import { measureLatencyTable, oneLayerQdq } from './latency';
import { parseLatencyTable } from './cost';

describe('latency lookup table', () => {
  const { model } = canonicalize(tinyResNet(3, { channels: 4, size: 8 }));
  const layers = findQuantLayers(model);

  it('isolates each layer as a one-layer QDQ model that ONNX Runtime loads and runs, at every width', async () => {
    for (const layer of layers) {
      for (const bits of [2, 4, 8] as const) {
        const { bytes, inputShape } = oneLayerQdq(model, layer, bits, 8, 2);
        expect(inputShape[0]).toBe(2);
        const q = decodeModel(bytes);
        expect(q.graph!.node!.filter((n) => n.opType === layer.node.opType)).toHaveLength(1);
        const session = await ModelSession.create(bytes, 'all');
        const out = await session.run(new Float32Array(inputShape.reduce((a, b) => a * b, 1)).fill(0.5), inputShape);
        expect(out.size).toBe(1);
        await session.release();
      }
    }
  });

  it('times every layer at every width into a table that loads back', async () => {
    const table = await measureLatencyTable(model, layers, [2, 8], { abits: null, groups: 1, groupMs: 1 });
    const back = parseLatencyTable(JSON.parse(JSON.stringify(table)), layers.map((l) => l.name), [2, 8]);
    expect(back.layers).toEqual(table.layers);
    for (const l of layers) for (const b of ['2', '8']) expect(table.layers[l.name]![b]).toBeGreaterThan(0);
  });
});
