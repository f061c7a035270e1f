import { describe, expect, it } from 'vitest';
import { canonicalize } from './graph/canonicalize';
import { findQuantLayers } from './graph/layers';
import { tinyResNet } from './testing/tiny-resnet';
import { tensorToFloat32 } from './onnx/tensor-data';
import { quantizeTensor, weightParams } from './quant/quantizer';
import { parseCheckpoint, serializeCheckpoint } from './checkpoint';

describe('checkpoints', () => {
  const layers = findQuantLayers(canonicalize(tinyResNet(2)).model);

  it('keep per-group weights: granularity, scales, zero points and codes come back as saved', () => {
    const weights = layers.map((layer) => {
      const w = tensorToFloat32(layer.weightTensor);
      const params = weightParams(w, layer.weightDims, { bits: 4, symmetric: false, granularity: { kind: 'group', axis: layer.channelAxis, size: 32 } }, 'lp');
      return { layer, codes: quantizeTensor(w, layer.weightDims, params), params };
    });
    const back = parseCheckpoint(serializeCheckpoint({ version: 1, key: 'k', blocksDone: 1, weights, activations: new Map(), metrics: [] }), layers);
    back.weights.forEach((w, i) => {
      expect(w.params.granularity).toEqual(weights[i]!.params.granularity);
      expect(Array.from(w.params.scale)).toEqual(Array.from(weights[i]!.params.scale));
      expect(Array.from(w.params.zeroPoint)).toEqual(Array.from(weights[i]!.params.zeroPoint));
      expect(Array.from(w.codes)).toEqual(Array.from(weights[i]!.codes));
    });
  });

  it('read a checkpoint written before granularities (an axis, or null per tensor)', () => {
    const layer = layers[0]!;
    const n = layer.weightDims.reduce((a, b) => a * b, 1);
    const c = layer.weightDims[0]!;
    const params = (axis: number | null) => ({ bits: 8, signed: true, symmetric: true, axis, scale: Array(axis === null ? 1 : c).fill(0.1), zeroPoint: Array(axis === null ? 1 : c).fill(0) });
    const text = JSON.stringify({ version: 1, key: 'k', blocksDone: 1, weights: [{ layer: layer.name, params: params(0), codes: btoa('\0'.repeat(n)) }], activations: [['t', params(null)]], metrics: [] });
    const back = parseCheckpoint(text, layers);
    expect(back.weights[0]!.params.granularity).toEqual({ kind: 'channel', axis: 0 });
    expect(back.activations.get('t')!.granularity).toEqual({ kind: 'tensor' });
  });
});
