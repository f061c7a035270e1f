import { describe, expect, it } from 'vitest';
import { canonicalize } from '../graph/canonicalize';
import { findQuantLayers } from '../graph/layers';
import { partitionModel, type Granularity } from '../graph/partition';
import { encodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import { withOutputs } from '../quant/calibrate';
import type { ModelProto } from '../onnx/schema';
import { tinyResNet } from '../testing/tiny-resnet';
import { inceptionNet, mobileNetV2 } from '../testing/graphs';
import { GraphWriter } from '../testing/graph-writer';
import { randn, rng } from '../random';
import type { Nd } from '../backends/cpu/reference';
import { BlockProgram } from './block-program';
import { referenceConv, WasmConvPool } from './conv-engine';
import { UnsupportedOpError } from './kernels';
import { BufferPool } from '../tensor/buffer-pool';

async function capture(model: ModelProto, x: Nd, names: string[]): Promise<Map<string, Nd>> {
  const session = await ModelSession.create(encodeModel(withOutputs(model, names)), 'none');
  try {
    const out = await session.run(x.data, x.shape, names);
    return new Map([...out].map(([k, v]) => [k, { shape: [...v.dims], data: v.data }]));
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const MODELS: [string, () => ModelProto, number[]][] = [
  ['tiny ResNet', () => tinyResNet(3, { channels: 4, size: 8 }), [2, 1, 8, 8]],
  ['MobileNetV2-like (ReLU6, depthwise, inverted residuals)', () => mobileNetV2(5), [2, 3, 16, 16]],
  ['Inception-like (Concat branches, pooling)', () => inceptionNet(7), [2, 1, 8, 8]],
];

describe('BlockProgram forward against ONNX Runtime', () => {
  for (const [label, make, inputShape] of MODELS) {
    for (const granularity of ['layer', 'block', 'net'] as Granularity[]) {
      it(`${label}, ${granularity} granularity: every block's output matches ORT's`, async () => {
        const { model } = canonicalize(make());
        const layers = findQuantLayers(model);
        const { blocks } = partitionModel(model, granularity);
        const x: Nd = { shape: inputShape, data: randn(inputShape.reduce((a, b) => a * b, 1), rng(11)) };
        const names = [...new Set(blocks.flatMap((b) => [b.input, b.output]).filter((n) => n !== 'input'))];
        const ref = await capture(model, x, names);
        ref.set('input', x);
        const pool = new WasmConvPool();
        for (const block of blocks) {
          const program = BlockProgram.compile(model, block, layers, await pool.factory());
          const y = program.forward(ref.get(block.input)!, program.slots.map((s) => s.weight)).output;
          const want = ref.get(block.output)!;
          expect(y.shape).toEqual(want.shape);
          const scale = Math.max(1, ...Array.from(want.data, Math.abs));
          expect(maxAbsDiff(y.data, want.data) / scale, `block ${block.id}`).toBeLessThan(1e-4);
        }
      });
    }
  }
});

describe('BlockProgram backward', () => {
  it("a residual block's weight gradients match central finite differences", () => {
    const { model } = canonicalize(tinyResNet(5, { channels: 3, size: 6 }));
    const layers = findQuantLayers(model);
    const block = partitionModel(model, 'block').blocks.find((b) => b.kind === 'residual' && b.layers.length === 3)!;
    expect(block, 'the projection block').toBeDefined();
    const program = BlockProgram.compile(model, block, layers, referenceConv);
    const rand = rng(2);
    const inShape = [2, 3, 6, 6];
    // a post-ReLU input, as the block sees it
    const x: Nd = { shape: inShape, data: randn(2 * 3 * 36, rand).map(Math.abs) };
    const weights = program.slots.map((s) => ({ shape: s.weight.shape, data: s.weight.data.slice() }));
    const out = program.forward(x, weights).output;
    const r = randn(out.data.length, rand);
    const loss = (): number => {
      const y = program.forward(x, weights).output.data;
      let acc = 0;
      for (let i = 0; i < y.length; i++) acc += y[i]! * r[i]!;
      return acc;
    };
    const g = program.backward(program.forward(x, weights), weights, { shape: out.shape, data: Float32Array.from(r) });
    // small enough not to cross a ReLU kink at these sizes, large enough for float32 differences
    const eps = 1e-3;
    weights.forEach((w, s) => {
      const dw = g.weights[s]!;
      expect(dw.shape).toEqual(w.shape);
      let worst = 0;
      let scale = 1e-3;
      for (let k = 0; k < 12; k++) {
        const j = Math.floor(rand() * w.data.length);
        const v = w.data[j]!;
        w.data[j] = v + eps;
        const up = loss();
        w.data[j] = v - eps;
        const down = loss();
        w.data[j] = v;
        const fd = (up - down) / (2 * eps);
        worst = Math.max(worst, Math.abs(fd - dw.data[j]!));
        scale = Math.max(scale, Math.abs(fd));
      }
      expect(worst / scale, `slot ${program.slots[s]!.layer.name}`).toBeLessThan(2e-2);
    });
  });

  it('activation quantizers: forward applies them, drop masks pass float values, and step gradients are LSQ', () => {
    const { model } = canonicalize(tinyResNet(5, { channels: 3, size: 6 }));
    const layers = findQuantLayers(model);
    const block = partitionModel(model, 'block').blocks.find((b) => b.kind === 'residual')!;
    const program = BlockProgram.compile(model, block, layers, referenceConv);
    const x: Nd = { shape: [2, 3, 6, 6], data: randn(2 * 3 * 36, rng(3)).map(Math.abs) };
    const weights = program.slots.map((s) => s.weight);
    const q = { tensor: block.output, scale: Float32Array.of(0.05), zero: 0, qmin: 0, qmax: 15 };
    const quantizers = new Map([[block.output, q]]);
    const tape = program.forward(x, weights, { quantizers });
    // every output value is on the grid
    for (const v of tape.output.data) expect(Math.abs(v / 0.05 - Math.round(v / 0.05))).toBeLessThan(1e-4);
    const float = program.forward(x, weights).output;
    const dropped = program.forward(x, weights, { quantizers, drop: { keep: 0, rand: rng(1) } }).output;
    expect(maxAbsDiff(dropped.data, float.data)).toBe(0);
    // d(Σ ŷ)/ds summed by the program equals the LSQ formula applied by hand
    const ones = { shape: tape.output.shape, data: new Float32Array(tape.output.data.length).fill(1) };
    const g = program.backward(tape, weights, ones, { quantizers });
    const pre = tape.preQuant.get(block.output)!.x.data;
    let want = 0;
    for (const v of pre) {
      const u = v / 0.05;
      const c = Math.round(u);
      want += c > 15 ? 15 : c < 0 ? 0 : c - u;
    }
    expect(g.steps.get(block.output)!).toBeCloseTo(want, 2);
  });
});

describe('BlockProgram in a buffer pool', () => {
  for (const [label, make, inputShape] of MODELS) {
    it(`${label}: iterations reusing pooled buffers give the bits of fresh ones, and the pool stops growing`, async () => {
      const { model } = canonicalize(make());
      const layers = findQuantLayers(model);
      const conv = await new WasmConvPool(1).factory();
      const rand = rng(5);
      const x0: Nd = { shape: inputShape, data: randn(inputShape.reduce((a, b) => a * b, 1), rand) };
      const { blocks } = partitionModel(model, 'block');
      const ref = await capture(model, x0, [...new Set(blocks.map((b) => b.input).filter((n) => n !== 'input'))]);
      ref.set('input', x0);
      for (const block of blocks) {
        const program = BlockProgram.compile(model, block, layers, conv);
        const fresh = BlockProgram.compile(model, block, layers, conv);
        const weights = program.slots.map((s) => s.weight);
        const input = ref.get(block.input)!;
        const pool = new BufferPool();
        const sizes: number[] = [];
        for (let it = 0; it < 4; it++) {
          // a different input and output gradient each iteration, so stale buffers would show
          const x: Nd = { shape: input.shape, data: input.data.map((v) => v * (1 + 0.1 * it)) };
          const want = fresh.forward(x, weights);
          const dOut = { shape: want.output.shape, data: randn(want.output.data.length, rand) };
          const wantG = fresh.backward(want, weights, dOut, { inputOnly: block.input !== 'input' && it % 2 === 1 });
          const got = pool.run(() => {
            const g = program.backward(program.forward(x, weights), weights, dOut, { inputOnly: block.input !== 'input' && it % 2 === 1 });
            // copied out before the buffers go back
            return { dW: g.weights.map((w) => w?.data.slice() ?? null), dx: g.input?.slice() ?? null };
          });
          pool.reclaim();
          got.dW.forEach((d, k) => expect(d, `block ${block.id}, slot ${k}, iteration ${it}`).toEqual(wantG.weights[k]?.data ?? null));
          expect(got.dx, `block ${block.id}, input gradient, iteration ${it}`).toEqual(wantG.input);
          sizes.push(pool.bytes);
        }
        expect(sizes[3], `block ${block.id}`).toBe(sizes[1]);
        expect(sizes[1]).toBeGreaterThan(0);
      }
    });
  }
});

describe('BlockProgram fusion', () => {
  it("a convolution and the ReLU that alone reads it run as one step, and split again when the convolution's output is quantized", async () => {
    const { model } = canonicalize(tinyResNet(5, { channels: 3, size: 6 }));
    const layers = findQuantLayers(model);
    const block = partitionModel(model, 'block').blocks.find((b) => b.kind === 'residual')!;
    const program = BlockProgram.compile(model, block, layers, await new WasmConvPool(1).factory());
    const nodes = model.graph!.node!.filter((n) => block.nodes.includes(n.name!));
    const conv = nodes.find((n) => n.opType === 'Conv' && nodes.some((m) => m.opType === 'Relu' && m.input![0] === n.output![0]))!;
    const relu = nodes.find((m) => m.opType === 'Relu' && m.input![0] === conv.output![0])!;
    const x: Nd = { shape: [2, 3, 6, 6], data: randn(2 * 3 * 36, rng(3)).map(Math.abs) };
    const weights = program.slots.map((s) => s.weight);
    const fused = program.forward(x, weights);
    expect(fused.values.has(conv.output![0]!)).toBe(false);
    expect(fused.values.has(relu.output![0]!)).toBe(true);
    // a quantizer on the convolution's output needs that tensor: the pair runs as two ops
    const q = { tensor: conv.output![0]!, scale: Float32Array.of(0.02), zero: 128, qmin: 0, qmax: 255 };
    const split = program.forward(x, weights, { quantizers: new Map([[q.tensor, q]]) });
    expect(split.values.has(conv.output![0]!)).toBe(true);
    const g = program.backward(split, weights, { shape: split.output.shape, data: new Float32Array(split.output.data.length).fill(1) }, { quantizers: new Map([[q.tensor, q]]) });
    expect(g.steps.get(q.tensor)).toBeTypeOf('number');
    // a loss on a tensor that fusion removed is refused by name rather than dropped
    expect(() => program.backward(fused, weights, null, { seeds: new Map([[conv.output![0]!, new Float32Array(72)]]) })).toThrow(/fuses with its activation/);
  });
});

describe('BlockProgram errors', () => {
  it('an op the engine lacks, inside a block, stops with its node name and op type', () => {
    const g = new GraphWriter(1);
    const a = g.op('Relu', 'stem.relu', [g.convBn('stem.conv', 'input', 1, 4, 3)]);
    const b = g.op('Erf', 'mid.erf', [g.convBn('mid.conv', a, 4, 4, 3)]);
    g.head(g.op('Relu', 'mid.relu', [b]), 4, 3);
    const { model } = canonicalize(g.model('erf_net', ['batch', 1, 8, 8], 3));
    const layers = findQuantLayers(model);
    const blocks = partitionModel(model, 'net').blocks;
    const holder = blocks.find((b) => b.nodes.includes('mid.erf'))!;
    expect(() => BlockProgram.compile(model, holder, layers, referenceConv)).toThrow(UnsupportedOpError);
    expect(() => BlockProgram.compile(model, holder, layers, referenceConv)).toThrow(/"mid\.erf" is a Erf/);
    // the blocks without it compile: an op outside the reconstructed part never blocks a run
    for (const b of blocks.filter((b) => b !== holder)) expect(() => BlockProgram.compile(model, b, layers, referenceConv)).not.toThrow();
  });
});
