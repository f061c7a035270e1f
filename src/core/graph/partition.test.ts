import { describe, expect, it } from 'vitest';
import { canonicalize } from './canonicalize';
import { findQuantLayers, layerName } from './layers';
import { mergeBlocks, partitionModel, PartitionError, splitBlock, type Granularity, type Partition } from './partition';
import { encodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import type { ModelProto } from '../onnx/schema';
import { tinyResNet } from '../testing/tiny-resnet';
import { randn, rng } from '../random';
import { denseNet, fireNet, inceptionNet, mobileNetV2, squeezeExciteNet } from '../testing/graphs';

const GRANULARITIES: Granularity[] = ['layer', 'block', 'stage', 'net'];

/** Every layer in exactly one block, graph order; inputs chain (at 'layer': come from earlier nodes). */
function checkInvariants(p: Partition, model: ModelProto): void {
  const nodes = model.graph!.node!;
  const position = new Map(nodes.map((n, i) => [layerName(n), i]));
  const producer = new Map(nodes.flatMap((n) => (n.output ?? []).map((o) => [o, n] as const)));
  expect(p.blocks.flatMap((b) => b.layers)).toEqual(findQuantLayers(model).map((l) => l.name));
  expect(new Set(p.blocks.map((b) => b.id)).size).toBe(p.blocks.length);
  const seen = new Set<string>();
  p.blocks.forEach((b, i) => {
    for (const n of b.nodes) {
      expect(seen.has(n), `${n} is in two blocks`).toBe(false);
      seen.add(n);
    }
    expect(b.nodes).toContain(layerName(producer.get(b.output)!));
    if (p.granularity === 'layer') {
      // topological: the input is made before the block's first node, by no later block
      const made = producer.get(b.input);
      if (made) expect(position.get(layerName(made))!).toBeLessThan(position.get(b.nodes[0]!)!);
      else expect(b.input).toBe('input');
    } else {
      expect(b.input).toBe(i === 0 ? 'input' : p.blocks[i - 1]!.output);
    }
  });
  if (p.granularity !== 'layer') {
    expect(p.blocks.at(-1)!.output).toBe('logits');
    expect(seen.size).toBe(nodes.length);
  }
}

const summary = (p: Partition) => p.blocks.map((b) => ({ id: b.id, kind: b.kind, layers: b.layers }));

describe('partition of a residual network', () => {
  const model = canonicalize(tinyResNet()).model;

  it('block: stem, one block per residual (identity and projection shortcut), the head with its pooling', () => {
    const p = partitionModel(model);
    expect(p.granularity).toBe('block');
    expect(p.blocks).toEqual([
      { id: 'stem', kind: 'layer', layers: ['stem.conv'], nodes: ['stem.conv', 'stem.relu'], input: 'input', output: 'stem.relu_out' },
      { id: 'b1', kind: 'residual', layers: ['b1.conv1', 'b1.conv2'], nodes: ['b1.conv1', 'b1.relu1', 'b1.conv2', 'b1.add', 'b1.relu2'], input: 'stem.relu_out', output: 'b1.relu2_out' },
      {
        id: 'b2',
        kind: 'residual',
        layers: ['b2.conv1', 'b2.conv2', 'b2.down'],
        nodes: ['b2.conv1', 'b2.relu1', 'b2.conv2', 'b2.down', 'b2.add', 'b2.relu2'],
        input: 'b1.relu2_out',
        output: 'b2.relu2_out',
      },
      { id: 'head', kind: 'layer', layers: ['fc'], nodes: ['pool', 'flatten', 'fc'], input: 'b2.relu2_out', output: 'logits' },
    ]);
  });

  it('layer: seven blocks, each ending after its activation but never across an Add', () => {
    const p = partitionModel(model, 'layer');
    expect(p.blocks.map((b) => [b.id, b.input, b.output])).toEqual([
      ['stem.conv', 'input', 'stem.relu_out'],
      ['b1.conv1', 'stem.relu_out', 'b1.relu1_out'],
      ['b1.conv2', 'b1.relu1_out', 'b1.conv2.bn_out'],
      ['b2.conv1', 'b1.relu2_out', 'b2.relu1_out'],
      ['b2.conv2', 'b2.relu1_out', 'b2.conv2.bn_out'],
      ['b2.down', 'b1.relu2_out', 'b2.down.bn_out'],
      ['fc', 'b2.relu2_out', 'logits'],
    ]);
    expect(p.blocks.every((b) => b.kind === 'layer')).toBe(true);
    expect(p.blocks.at(-1)!.nodes).toEqual(['pool', 'flatten', 'fc']);
    // the joins belong to no layer
    expect(p.blocks.flatMap((b) => b.nodes)).not.toContain('b1.add');
  });

  it('stage: a new stage where the resolution or width changes; net: all between stem and head', () => {
    expect(summary(partitionModel(model, 'stage'))).toEqual([
      { id: 'stem', kind: 'layer', layers: ['stem.conv'] },
      { id: 'stage1', kind: 'stage', layers: ['b1.conv1', 'b1.conv2'] },
      { id: 'stage2', kind: 'stage', layers: ['b2.conv1', 'b2.conv2', 'b2.down'] },
      { id: 'head', kind: 'layer', layers: ['fc'] },
    ]);
    const net = partitionModel(model, 'net');
    expect(net.blocks.map((b) => [b.id, b.kind, b.input, b.output])).toEqual([
      ['stem', 'layer', 'input', 'stem.relu_out'],
      ['net', 'net', 'stem.relu_out', 'b2.relu2_out'],
      ['head', 'layer', 'b2.relu2_out', 'logits'],
    ]);
  });

  it('keeps the invariants at every granularity', () => {
    for (const g of GRANULARITIES) checkInvariants(partitionModel(model, g), model);
  });

  it('merges adjacent blocks and refuses others', () => {
    const p = partitionModel(model);
    const merged = mergeBlocks(p, model, ['b2', 'b1']);
    expect(merged.blocks.map((b) => b.id)).toEqual(['stem', 'b1+b2', 'head']);
    expect(merged.blocks[1]).toMatchObject({ kind: 'stage', input: 'stem.relu_out', output: 'b2.relu2_out' });
    checkInvariants(merged, model);
    expect(() => mergeBlocks(p, model, ['stem', 'b2'])).toThrow(PartitionError);
    expect(() => mergeBlocks(p, model, ['b1', 'nope'])).toThrow(PartitionError);
  });

  it('merging the layers of a residual block gives back the block, joins included', () => {
    const p = partitionModel(model, 'layer');
    const merged = mergeBlocks(p, model, ['b1.conv1', 'b1.conv2']);
    expect(merged.blocks[1]).toEqual(partitionModel(model).blocks[1]);
    // b1.conv2 and b2.conv1 are adjacent, but the skip of b1 enters between them
    expect(() => mergeBlocks(p, model, ['b1.conv2', 'b2.conv1'])).toThrow(PartitionError);
  });

  it('splits at a single tensor, and not inside a residual block', () => {
    const net = partitionModel(model, 'net');
    const split = splitBlock(net, model, 'net', 'b1.conv2');
    expect(split.blocks.map((b) => [b.id, b.kind, b.input, b.output])).toEqual([
      ['stem', 'layer', 'input', 'stem.relu_out'],
      ['b1', 'residual', 'stem.relu_out', 'b1.relu2_out'],
      ['b2', 'residual', 'b1.relu2_out', 'b2.relu2_out'],
      ['head', 'layer', 'b2.relu2_out', 'logits'],
    ]);
    checkInvariants(split, model);
    const p = partitionModel(model);
    expect(() => splitBlock(p, model, 'b1', 'b1.conv1')).toThrow(PartitionError);
    expect(() => splitBlock(p, model, 'b2', 'b2.conv2')).toThrow(/skip connection/);
    expect(() => splitBlock(p, model, 'b1', 'b1.conv2')).toThrow(/last layer/);
    expect(() => splitBlock(p, model, 'b1', 'fc')).toThrow(PartitionError);
  });
});

describe('partition of a MobileNetV2', () => {
  const model = canonicalize(mobileNetV2()).model;

  it('runs in ONNX Runtime, and BN folding keeps its function (depthwise convolutions included)', async () => {
    const x = randn(2 * 3 * 16 * 16, rng(5));
    const run = async (m: ModelProto): Promise<Float32Array> => {
      const s = await ModelSession.create(encodeModel(m), 'none');
      const out = (await s.run(x, [2, 3, 16, 16])).get('logits')!;
      await s.release();
      expect(out.dims).toEqual([2, 5]);
      return out.data;
    };
    const [a, b] = [await run(mobileNetV2()), await run(model)];
    expect(a.every(Number.isFinite)).toBe(true);
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i]!, 4);
  });

  it('makes each inverted residual one block, with or without the Add; the final 1×1 conv and FC apart', () => {
    const ir = (b: string, expand = true) => [...(expand ? [`${b}.expand`] : []), `${b}.dw`, `${b}.project`];
    expect(summary(partitionModel(model))).toEqual([
      { id: 'stem', kind: 'layer', layers: ['stem.conv'] },
      { id: 'ir1', kind: 'plain', layers: ir('ir1', false) },
      { id: 'ir2', kind: 'plain', layers: ir('ir2') },
      { id: 'ir3', kind: 'residual', layers: ir('ir3') },
      { id: 'ir4', kind: 'plain', layers: ir('ir4') },
      { id: 'ir5', kind: 'residual', layers: ir('ir5') },
      { id: 'last.conv', kind: 'layer', layers: ['last.conv'] },
      { id: 'head', kind: 'layer', layers: ['fc'] },
    ]);
    // no activation after the Add: the block ends at it
    expect(partitionModel(model).blocks[3]!.output).toBe('ir3.add_out');
  });

  it('groups stages as torchvision does: a stage starts where stride or width changes', () => {
    expect(summary(partitionModel(model, 'stage')).map((b) => b.layers.map((l) => l.split('.')[0]))).toEqual([
      ['stem'],
      ['ir1', 'ir1'],
      ['ir2', 'ir2', 'ir2', 'ir3', 'ir3', 'ir3'],
      ['ir4', 'ir4', 'ir4', 'ir5', 'ir5', 'ir5'],
      ['last'],
      ['fc'],
    ]);
  });

  it('keeps the invariants at every granularity, and splits a plain block after its depthwise conv', () => {
    for (const g of GRANULARITIES) checkInvariants(partitionModel(model, g), model);
    const split = splitBlock(partitionModel(model), model, 'ir2', 'ir2.dw');
    expect(split.blocks.slice(2, 4).map((b) => [b.id, b.output])).toEqual([
      ['ir2', 'ir2.dw.clip_out'],
      ['ir2.project', 'ir2.project.bn_out'],
    ]);
    checkInvariants(split, model);
  });
});

describe('partition of a network that is not a chain of layers', () => {
  const model = canonicalize(inceptionNet()).model;

  it('keeps a concat of branches whole as one block; at layer granularity a pool branch takes its pooling', () => {
    const p = partitionModel(model);
    expect(summary(p)).toEqual([
      { id: 'stem', kind: 'layer', layers: ['stem.conv'] },
      { id: 'inc', kind: 'branch', layers: ['inc.a', 'inc.b1', 'inc.b2', 'inc.c'] },
      { id: 'mix.conv', kind: 'layer', layers: ['mix.conv'] },
      { id: 'head', kind: 'layer', layers: ['fc'] },
    ]);
    expect(p.blocks[1]).toMatchObject({ input: 'stem.relu_out', output: 'inc.concat_out' });
    const layers = partitionModel(model, 'layer');
    expect(layers.blocks.find((b) => b.id === 'inc.c')).toMatchObject({ nodes: ['inc.pool', 'inc.c', 'inc.c.relu'], input: 'stem.relu_out' });
    for (const g of GRANULARITIES) checkInvariants(partitionModel(model, g), model);
  });

  it('carries Constant nodes with the node they feed, and rejects models without layers', () => {
    const m = structuredClone(model);
    const g = m.graph!;
    const at = g.node!.findIndex((n) => n.name === 'mix.relu');
    g.node!.splice(at, 0, { name: 'six', opType: 'Constant', output: ['six_out'], attribute: [{ name: 'value', type: 4, t: { dims: [], dataType: 1, floatData: Float32Array.of(6) } }] });
    g.node![at + 1] = { name: 'mix.relu', opType: 'Clip', input: ['mix.conv.bn_out', '', 'six_out'], output: ['mix.relu_out'] };
    const mix = partitionModel(m).blocks.find((b) => b.id === 'mix.conv')!;
    expect(mix.nodes).toEqual(['mix.conv', 'six', 'mix.relu']);
    g.node = g.node!.filter((n) => !['Conv', 'Gemm'].includes(n.opType!));
    expect(() => partitionModel(m)).toThrow(PartitionError);
  });
});

describe('partition of the block shapes torchvision exports (algorithms.md §1.7)', () => {
  it('keeps a squeeze-excitation inside its inverted residual, with or without the Add', () => {
    const model = canonicalize(squeezeExciteNet()).model;
    const ir = (b: string) => [`${b}.expand`, `${b}.dw`, `${b}.se.fc1`, `${b}.se.fc2`, `${b}.project`];
    expect(summary(partitionModel(model))).toEqual([
      { id: 'stem', kind: 'layer', layers: ['stem.conv'] },
      { id: 'b1', kind: 'plain', layers: ir('b1') },
      { id: 'b2', kind: 'residual', layers: ir('b2') },
      { id: 'last.conv', kind: 'layer', layers: ['last.conv'] },
      { id: 'head', kind: 'layer', layers: ['fc'] },
    ]);
    // hard-swish (x·HardSigmoid(x)) is the stem's activation, not a block of its own
    expect(partitionModel(model).blocks[0]!.output).toBe('stem.hswish.mul_out');
    for (const g of GRANULARITIES) checkInvariants(partitionModel(model, g), model);
  });

  it('makes a Fire module one branch block, its squeeze layer included', () => {
    const model = canonicalize(fireNet()).model;
    const fire = (f: string) => [`${f}.squeeze`, `${f}.expand1`, `${f}.expand3`];
    const p = partitionModel(model);
    expect(summary(p)).toEqual([
      { id: 'stem', kind: 'layer', layers: ['stem.conv'] },
      { id: 'fire1', kind: 'branch', layers: fire('fire1') },
      { id: 'fire2', kind: 'branch', layers: fire('fire2') },
      { id: 'head', kind: 'layer', layers: ['cls'] },
    ]);
    expect(p.blocks[2]).toMatchObject({ input: 'fire1.concat_out', output: 'fire2.concat_out' });
    expect(p.blocks[2]!.nodes[0]).toBe('pool1');
    for (const g of GRANULARITIES) checkInvariants(partitionModel(model, g), model);
  });

  it('makes each dense layer a branch block; a pre-activation BN and ReLU go with the layer after them', () => {
    const model = canonicalize(denseNet()).model;
    const dense = (l: string): { id: string; kind: string; layers: string[] } => ({ id: l, kind: 'branch', layers: [`${l}.conv1`, `${l}.conv2`] });
    const p = partitionModel(model);
    expect(summary(p)).toEqual([
      { id: 'stem', kind: 'layer', layers: ['stem.conv'] },
      dense('d1.l1'),
      dense('d1.l2'),
      dense('d1.l3'),
      { id: 't1.conv', kind: 'layer', layers: ['t1.conv'] },
      dense('d2.l1'),
      dense('d2.l2'),
      { id: 'head', kind: 'layer', layers: ['fc'] },
    ]);
    expect(p.blocks[3]!.output).toBe('d1.concat_out');
    expect(p.blocks[4]!.nodes).toEqual(['t1.norm', 't1.relu', 't1.conv']);
    expect(p.blocks[5]!.nodes[0]).toBe('t1.pool');
    expect(p.blocks.at(-1)!.nodes.slice(0, 2)).toEqual(['final.norm', 'final.relu']);
    for (const g of GRANULARITIES) checkInvariants(partitionModel(model, g), model);
  });
});
