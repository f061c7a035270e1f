import { describe, expect, it } from 'vitest';
import { exportQdq } from './qdq';
import { canonicalize } from '../graph/canonicalize';
import { activationQuantPoints, findQuantLayers } from '../graph/layers';
import { roundToNearest } from '../methods/rtn';
import { dequantizeTensor, minMaxPerTensor, quantizeTensor, weightParams, type Bits, type QuantParams } from '../quant/quantizer';
import { collectRanges, withOutputs } from '../quant/calibrate';
import { decodeModel, encodeModel } from '../onnx/codec';
import { DataType, type ModelProto } from '../onnx/schema';
import { floatTensor, tensorToFloat32 } from '../onnx/tensor-data';
import { ModelSession } from '../eval/runtime';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import type { ImageBatches } from '../data/batches';
import type { QuantizedWeight } from './qdq';

const X = randn(8 * 64, rng(5));
const SHAPE = [8, 1, 8, 8] as const;

async function run(model: ModelProto | Uint8Array, optimization: 'none' | 'all'): Promise<Float32Array> {
  const s = await ModelSession.create(model instanceof Uint8Array ? model : encodeModel(model), optimization);
  const out = (await s.run(X, SHAPE)).get('logits')!.data;
  await s.release();
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Calibration batches straight from memory, standing in for decoded images. */
const memoryBatches = { batches: 1, count: 8, batch: async () => ({ data: X, shape: [...SHAPE], start: 0 }) } as unknown as ImageBatches;

describe('QDQ export', () => {
  const model = canonicalize(tinyResNet(9)).model;
  const layers = findQuantLayers(model);

  for (const bits of [8, 4, 2] as Bits[]) {
    it(`W${bits} weight-only: the exported graph computes exactly the float model with dequantized weights`, async () => {
      const weights = layers.map((l) => roundToNearest(l, bits));
      const exported = encodeModel(exportQdq({ model, weights, activations: new Map() }));
      // reference: the same float graph with w replaced by s·(q − z), built without any Q/DQ node
      const ref = structuredClone(model);
      ref.graph!.initializer = ref.graph!.initializer!.map((t) => {
        const w = weights.find((q) => q.layer.weight === t.name);
        return w ? floatTensor(t.name!, t.dims!, dequantizeTensor(w.codes, w.layer.weightDims, w.params)) : t;
      });
      expect(maxAbsDiff(await run(exported, 'none'), await run(ref, 'none'))).toBeLessThan(1e-5);
      const dq = decodeModel(exported).graph!.initializer!.find((t) => t.name === `${layers[1]!.weight}_quantized`)!;
      // 8 bits: int8 symmetric (ONNX Runtime's integer kernels); below: the default asymmetric grid, uint4 with zero points
      expect(dq.dataType).toBe(bits === 8 ? DataType.INT8 : DataType.UINT4);
    });
  }

  it('float weight format writes s·(q − z) as float initializers and computes the same as the integer form', async () => {
    const weights = layers.map((l) => roundToNearest(l, 4));
    const integer = encodeModel(exportQdq({ model, weights, activations: new Map() }));
    const float = exportQdq({ model, weights, activations: new Map(), weightFormat: 'float' });
    expect(float.graph!.node!.some((n) => n.opType === 'DequantizeLinear')).toBe(false);
    expect(maxAbsDiff(await run(integer, 'none'), await run(float, 'none'))).toBeLessThan(1e-5);
  });

  it('W8A8: fused integer execution (all optimisations) agrees with the node-by-node simulation', async () => {
    const points = activationQuantPoints(model);
    const ranges = await collectRanges(model, points, memoryBatches);
    const activations = new Map<string, QuantParams>([...ranges].map(([t, r]) => [t, minMaxPerTensor(r.min, r.max, 8, false, false)]));
    const weights = layers.map((l) => roundToNearest(l, 8));
    const exported = encodeModel(exportQdq({ model, weights, activations }));
    const sim = await run(exported, 'none');
    const fused = await run(exported, 'all');
    const fp = await run(model, 'none');
    const scale = Math.max(...Array.from(fp, Math.abs));
    expect(maxAbsDiff(sim, fused) / scale).toBeLessThan(0.02);
    expect(maxAbsDiff(sim, fp) / scale).toBeLessThan(0.05);
    expect(maxAbsDiff(sim, fp)).toBeGreaterThan(0); // quantization did something
    const nodes = decodeModel(exported).graph!.node!;
    expect(nodes.filter((n) => n.opType === 'QuantizeLinear').length).toBe(points.length);
  });

  it('gives layers that share an initializer (torch.onnx keeps one copy of equal constants) their own codes and int32 biases', async () => {
    const shared = structuredClone(model);
    const node = (name: string) => shared.graph!.node!.find((n) => n.name === name)!;
    // b1.conv2 reads b1.conv1's weight, b2.conv2 b2.conv1's bias (same shapes)
    node('b1.conv2').input![1] = node('b1.conv1').input![1]!;
    node('b2.conv2').input![2] = node('b2.conv1').input![2]!;
    const points = activationQuantPoints(shared);
    const ranges = await collectRanges(shared, points, memoryBatches);
    const activations = new Map<string, QuantParams>([...ranges].map(([t, r]) => [t, minMaxPerTensor(r.min, r.max, 8, false, false)]));
    const weights = findQuantLayers(shared).map((l) => roundToNearest(l, 8));
    const exported = exportQdq({ model: shared, weights, activations });
    const g = exported.graph!;
    for (const names of [g.node!.map((n) => n.name), g.node!.flatMap((n) => n.output), g.initializer!.map((t) => t.name)]) expect(new Set(names).size).toBe(names.length);
    const bytes = encodeModel(exported);
    const fp = await run(shared, 'none');
    const scale = Math.max(...Array.from(fp, Math.abs));
    expect(maxAbsDiff(await run(bytes, 'none'), fp) / scale).toBeLessThan(0.05);
    expect(maxAbsDiff(await run(bytes, 'all'), fp) / scale).toBeLessThan(0.05);
  });

  it('an all-zero output channel (a pruned filter) keeps a finite int32 bias and computes the float model', async () => {
    const pruned = structuredClone(model);
    const conv = pruned.graph!.node!.find((n) => n.name === 'b1.conv1')!;
    const wi = pruned.graph!.initializer!.findIndex((t) => t.name === conv.input![1]);
    const dims = pruned.graph!.initializer![wi]!.dims!.map(Number);
    const w = tensorToFloat32(pruned.graph!.initializer![wi]!).slice();
    w.fill(0, 0, w.length / dims[0]!);
    pruned.graph!.initializer![wi] = floatTensor(conv.input![1]!, dims, w);
    const bi = pruned.graph!.initializer!.findIndex((t) => t.name === conv.input![2]);
    const b = tensorToFloat32(pruned.graph!.initializer![bi]!).slice();
    b[0] = 0.75;
    pruned.graph!.initializer![bi] = floatTensor(conv.input![2]!, [b.length], b);
    const ranges = await collectRanges(pruned, activationQuantPoints(pruned), memoryBatches);
    const activations = new Map<string, QuantParams>([...ranges].map(([t, r]) => [t, minMaxPerTensor(r.min, r.max, 8, false, false)]));
    const weights = findQuantLayers(pruned).map((l) => roundToNearest(l, 8));
    const layer = weights.find((q) => q.layer.node.name === 'b1.conv1')!;
    // any step represents zeros exactly; a unit step keeps b / (s_in · s_w) in int32
    expect(layer.params.scale[0]).toBe(1);
    const exported = exportQdq({ model: pruned, weights, activations });
    const bias = exported.graph!.initializer!.find((t) => t.name === `${conv.input![2]}_quantized`)!;
    expect(bias.dataType).toBe(DataType.INT32);
    const fp = await run(pruned, 'none');
    const scale = Math.max(...Array.from(fp, Math.abs));
    expect(maxAbsDiff(await run(encodeModel(exported), 'none'), fp) / scale).toBeLessThan(0.05);
  });

  /** The classifier as Gemm(transB = 0): its weight stored [K, N], output channels on axis 1. */
  function transposedHead(m: ModelProto): ModelProto {
    const t = structuredClone(m);
    const fc = t.graph!.node!.find((n) => n.name === 'fc')!;
    fc.attribute = (fc.attribute ?? []).filter((a) => a.name !== 'transB');
    const init = t.graph!.initializer!.findIndex((i) => i.name === fc.input![1]);
    const [n, k] = t.graph!.initializer![init]!.dims! as [number, number];
    const w = tensorToFloat32(t.graph!.initializer![init]!);
    const wt = new Float32Array(w.length);
    for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) wt[j * n + i] = w[i * k + j]!;
    t.graph!.initializer![init] = floatTensor(fc.input![1]!, [k, n], wt);
    return t;
  }

  const cases: { name: string; bits: Bits; symmetric: boolean; offset: boolean }[] = [
    { name: 'W8 symmetric (int8)', bits: 8, symmetric: true, offset: false },
    { name: 'W4 asymmetric (uint4, a zero point per group)', bits: 4, symmetric: false, offset: false },
    { name: 'W3 symmetric (int4 container)', bits: 3, symmetric: true, offset: false },
    { name: 'W2 decoupleQ (a float offset per group)', bits: 2, symmetric: false, offset: true },
  ];
  for (const [variant, m] of [['Conv and Gemm(transB = 1)', model], ['Gemm(transB = 0)', transposedHead(model)]] as const) {
    for (const c of cases) {
      it(`per group (${variant}, ${c.name}): ONNX Runtime's blocked DequantizeLinear gives exactly the simulated weights`, async () => {
        const ls = findQuantLayers(m);
        if (variant === 'Gemm(transB = 0)') expect(ls.at(-1)!.channelAxis).toBe(1);
        const rand = rng(13);
        // groups of 8: rows of 9, 36, 4 and 72 give shorter last groups, a single short group, and none
        const weights: QuantizedWeight[] = ls.map((layer) => {
          const w = tensorToFloat32(layer.weightTensor);
          const base = weightParams(w, layer.weightDims, { bits: c.bits, symmetric: c.symmetric, granularity: { kind: 'group', axis: layer.channelAxis, size: 8 } }, 'lp');
          const params: QuantParams = c.offset ? { ...base, signed: true, zeroPoint: new Int32Array(base.scale.length), offset: Float32Array.from(base.scale, () => 0.05 * (rand() - 0.5)) } : base;
          return { layer, codes: quantizeTensor(w, layer.weightDims, params), params };
        });
        const exported = exportQdq({ model: m, weights, activations: new Map() });
        const names = weights.map((w) => `${w.layer.weight}_dequantized`);
        const s = await ModelSession.create(encodeModel(withOutputs(exported, names)), 'none');
        const outs = await s.run(X, SHAPE, names);
        await s.release();
        for (const w of weights) {
          const want = dequantizeTensor(w.codes, w.layer.weightDims, w.params);
          const got = outs.get(`${w.layer.weight}_dequantized`)!;
          expect(got.dims).toEqual(w.layer.weightDims);
          if (c.offset) expect(maxAbsDiff(got.data, want)).toBeLessThanOrEqual(1e-6);
          else expect(Array.from(got.data)).toEqual(Array.from(want));
        }
        // and the model as deployed (full optimisation) computes what the simulation does
        const bytes = encodeModel(exported);
        expect(maxAbsDiff(await run(bytes, 'all'), await run(bytes, 'none'))).toBeLessThan(1e-5);
        expect(decodeModel(bytes).graph!.node!.filter((n) => n.opType === 'DequantizeLinear').every((n) => n.attribute!.some((a) => a.name === 'block_size' && Number(a.i) === 8))).toBe(true);
      });
    }
  }
});
