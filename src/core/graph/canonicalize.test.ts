import { describe, expect, it } from 'vitest';
import { canonicalize } from './canonicalize';
import { findQuantLayers } from './layers';
import { encodeModel } from '../onnx/codec';
import { ModelSession } from '../eval/runtime';
import { AttributeType, DataType, type Attribute, type ModelProto, type NodeProto, type TensorProto } from '../onnx/schema';
import { floatTensor, tensorToFloat32 } from '../onnx/tensor-data';
import { intAttr, intsAttr } from './attributes';
import { randn, rng } from '../random';

const INPUT = [2, 3, 6, 6];

/** All outputs of `model` on `x`, by name. */
async function run(model: ModelProto, x: Float32Array, shape = INPUT): Promise<Map<string, Float32Array>> {
  const s = await ModelSession.create(encodeModel(model), 'none');
  const out = await s.run(x, shape);
  await s.release();
  return new Map([...out].map(([k, v]) => [k, v.data]));
}

const constant = (out: string, attribute: Attribute): NodeProto => ({ name: `${out}.const`, opType: 'Constant', input: [], output: [out], attribute: [attribute] });
const valueAttr = (t: TensorProto): Attribute => ({ name: 'value', type: AttributeType.TENSOR, t });
const floatsAttr = (name: string, floats: number[]): Attribute => ({ name, type: AttributeType.FLOATS, floats });
const valueInts = (ints: number[]): Attribute => ({ name: 'value_ints', type: AttributeType.INTS, ints });

/** Random float16 bit patterns of moderate magnitude (exponents 2^-4 … 2^1), both signs. */
function halfBits(n: number, rand: () => number): Uint16Array {
  return Uint16Array.from({ length: n }, () => ((rand() < 0.5 ? 1 : 0) << 15) | ((11 + Math.floor(rand() * 6)) << 10) | Math.floor(rand() * 1024));
}

/**
 * Conv → ReLU → pool → Gemm written the way Paddle2ONNX / tf2onnx / older torch.onnx write them:
 * every weight a `Constant` node, the conv weight flat and reshaped (through an Identity), the
 * linear weight stored as float16 [in, out] and cast and transposed, biases and scales squeezed or
 * unsqueezed, Clip bounds as `value_float`, an int scalar cast to float. At opset 11 Squeeze and
 * Unsqueeze take `axes` as an attribute, at 13 as an input.
 */
function constantWeightsModel(opset: 11 | 13, irVersion = 7): ModelProto {
  const rand = rng(opset);
  const n: NodeProto[] = [];
  const axes = (name: string, values: number[]): { inputs: string[]; attribute: Attribute[] } => {
    if (opset < 13) return { inputs: [], attribute: [intsAttr('axes', values)] };
    n.push(constant(name, valueInts(values)));
    return { inputs: [name], attribute: [] };
  };
  n.push(constant('w_flat', valueAttr(floatTensor('', [4 * 3 * 3 * 3], randn(108, rand, 0.3)))));
  n.push(constant('w_shape', valueInts([4, 3, 3, 3])));
  n.push({ name: 'w_reshape', opType: 'Reshape', input: ['w_flat', 'w_shape'], output: ['w'] });
  n.push({ name: 'w_id', opType: 'Identity', input: ['w'], output: ['w_identity'] });
  // a bias as value_floats; stored in float_data, not raw_data
  n.push(constant('conv_b', floatsAttr('value_floats', [0.1, -0.2, 0.3, 0])));
  n.push({ name: 'conv', opType: 'Conv', input: ['x', 'w_identity', 'conv_b'], output: ['conv_out'], attribute: [intsAttr('kernel_shape', [3, 3]), intsAttr('pads', [1, 1, 1, 1])] });
  n.push(constant('lo', { name: 'value_float', type: AttributeType.FLOAT, f: 0 }));
  n.push(constant('hi', { name: 'value_float', type: AttributeType.FLOAT, f: 0.5 }));
  n.push({ name: 'clip', opType: 'Clip', input: ['conv_out', 'lo', 'hi'], output: ['clip_out'] });
  n.push({ name: 'pool', opType: 'GlobalAveragePool', input: ['clip_out'], output: ['pool_out'] });
  n.push({ name: 'flatten', opType: 'Flatten', input: ['pool_out'], output: ['flat'] });
  n.push(constant('fcw16', valueAttr({ name: 'ignored', dataType: DataType.FLOAT16, dims: [4, 5], rawData: new Uint8Array(halfBits(20, rand).buffer) })));
  n.push({ name: 'fcw_cast', opType: 'Cast', input: ['fcw16'], output: ['fcw32'], attribute: [intAttr('to', DataType.FLOAT)] });
  n.push({ name: 'fcw_t', opType: 'Transpose', input: ['fcw32'], output: ['fcw'], attribute: [intsAttr('perm', [1, 0])] });
  n.push(constant('fcb_2d', valueAttr(floatTensor('', [1, 5], randn(5, rand, 0.1)))));
  const sq = axes('sq_axes', [0]);
  n.push({ name: 'fcb_squeeze', opType: 'Squeeze', input: ['fcb_2d', ...sq.inputs], output: ['fcb'], attribute: sq.attribute });
  n.push({ name: 'fc', opType: 'Gemm', input: ['flat', 'fcw', 'fcb'], output: ['fc_out'], attribute: [intAttr('transB', 1)] });
  n.push(constant('scale_1d', valueAttr({ name: '', dataType: DataType.FLOAT, dims: [5], floatData: Float32Array.of(1, 2, 3, 4, 5) })));
  const unsq = axes('unsq_axes', [0]);
  n.push({ name: 'scale_unsqueeze', opType: 'Unsqueeze', input: ['scale_1d', ...unsq.inputs], output: ['scale'], attribute: unsq.attribute });
  n.push({ name: 'mul', opType: 'Mul', input: ['fc_out', 'scale'], output: ['scaled'] });
  n.push(constant('offset_i', { name: 'value_int', type: AttributeType.INT, i: 3 }));
  n.push({ name: 'offset_cast', opType: 'Cast', input: ['offset_i'], output: ['offset'], attribute: [intAttr('to', DataType.FLOAT)] });
  n.push({ name: 'add', opType: 'Add', input: ['scaled', 'offset'], output: ['y'] });
  const tensor = (dims: (number | string)[]) => ({ tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } });
  return {
    irVersion,
    opsetImport: [{ domain: '', version: opset }],
    graph: { name: 'constant_weights', node: n, initializer: [], input: [{ name: 'x', type: tensor(['n', 3, 6, 6]) }], output: [{ name: 'y', type: tensor(['n', 5]) }] },
  };
}

describe('canonicalize: weights written as Constant nodes', () => {
  it.each([11, 13] as const)('at opset %i: become initializers, folded through Reshape, Identity, Cast, Transpose, Squeeze, Unsqueeze; same outputs in ONNX Runtime', async (opset) => {
    const model = constantWeightsModel(opset);
    // the symptom: nothing to quantize
    expect(findQuantLayers(model)).toEqual([]);
    const { model: out, report } = canonicalize(model);
    expect(report.constantNodes).toBe(opset === 13 ? 11 : 9);
    expect(report.removedIdentities).toBe(1);
    // Reshape of the conv weight, Cast and Transpose of the linear weight, Squeeze, Unsqueeze, Cast of the offset
    expect(report.foldedConstantOps).toBe(6);
    expect(out.graph!.node!.map((n) => n.opType)).toEqual(['Conv', 'Clip', 'GlobalAveragePool', 'Flatten', 'Gemm', 'Mul', 'Add']);
    const layers = findQuantLayers(out);
    expect(layers.map((l) => [l.name, l.kind, l.weight, l.weightDims, l.bias])).toEqual([
      ['conv', 'conv', 'w', [4, 3, 3, 3], 'conv_b'],
      ['fc', 'gemm', 'fcw', [5, 4], 'fcb'],
    ]);
    // no initializer left that nothing reads (the sources of folded values)
    expect(out.graph!.initializer!.map((t) => t.name).sort()).toEqual(['conv_b', 'fcb', 'fcw', 'hi', 'lo', 'offset', 'scale', 'w']);
    const x = randn(INPUT.reduce((a, b) => a * b, 1), rng(5));
    const [a, b] = [await run(model, x), await run(out, x)];
    expect(Array.from(b.get('y')!)).toEqual(Array.from(a.get('y')!));
  });

  it('writes the folded values exactly: the transposed float16 weight, the squeezed bias', () => {
    const model = constantWeightsModel(13);
    const { model: out } = canonicalize(model);
    const get = (m: ModelProto, name: string): TensorProto | undefined => m.graph!.initializer!.find((t) => t.name === name);
    const fcw = get(out, 'fcw')!;
    expect(fcw.dataType).toBe(DataType.FLOAT);
    const src = model.graph!.node!.find((n) => n.output![0] === 'fcw16')!.attribute![0]!.t!;
    const half = tensorToFloat32(src);
    const w = tensorToFloat32(fcw);
    for (let i = 0; i < 4; i++) for (let o = 0; o < 5; o++) expect(w[o * 4 + i]).toBe(half[i * 5 + o]);
    expect(get(out, 'fcb')!.dims).toEqual([5]);
    expect(get(out, 'scale')!.dims).toEqual([1, 5]);
    expect(tensorToFloat32(get(out, 'scale')!)).toEqual(Float32Array.of(1, 2, 3, 4, 5));
    expect(tensorToFloat32(get(out, 'offset')!)).toEqual(Float32Array.of(3));
  });

  it('at IR version 3 lists the new initializers as graph inputs too, after the data input; ONNX Runtime runs it', async () => {
    const model = constantWeightsModel(11, 3);
    const { model: out } = canonicalize(model);
    const inputs = out.graph!.input!.map((v) => v.name);
    expect(inputs[0]).toBe('x');
    expect(inputs.slice(1).sort()).toEqual(['conv_b', 'fcb', 'fcw', 'hi', 'lo', 'offset', 'scale', 'w']);
    const x = randn(INPUT.reduce((a, b) => a * b, 1), rng(6));
    const [a, b] = [await run(model, x), await run(out, x)];
    expect(Array.from(b.get('y')!)).toEqual(Array.from(a.get('y')!));
  });

  it('keeps graph outputs intact: an Identity or a fold whose output is a graph output stays a node', async () => {
    const model = constantWeightsModel(13);
    const g = model.graph!;
    const tensor = (dims: number[]) => ({ tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } });
    // the Constant-fed conv weight exposed through an Identity, and the transposed linear weight itself
    g.node!.push({ name: 'w_expose', opType: 'Identity', input: ['w'], output: ['w_out'] });
    g.output!.push({ name: 'w_out', type: tensor([4, 3, 3, 3]) }, { name: 'fcw', type: tensor([5, 4]) });
    const { model: out, report } = canonicalize(model);
    expect(report.foldedConstantOps).toBe(5);
    const byOutput = new Map(out.graph!.node!.map((n) => [n.output![0], n]));
    expect(byOutput.get('w_out')?.opType).toBe('Identity');
    expect(byOutput.get('fcw')?.opType).toBe('Transpose');
    expect(findQuantLayers(out).map((l) => l.name)).toEqual(['conv']);
    const x = randn(INPUT.reduce((a, b) => a * b, 1), rng(7));
    const [a, b] = [await run(model, x), await run(out, x)];
    for (const name of ['y', 'w_out', 'fcw']) expect(Array.from(b.get(name)!)).toEqual(Array.from(a.get(name)!));
  });

  it('leaves a foldable op with a non-constant input alone, and a Constant that is a graph output', () => {
    const model = constantWeightsModel(13);
    const g = model.graph!;
    g.node!.push({ name: 'xt', opType: 'Transpose', input: ['x'], output: ['x_t'], attribute: [intsAttr('perm', [0, 1, 3, 2])] });
    g.node!.push(constant('k', floatsAttr('value_floats', [1, 2])));
    g.output!.push({ name: 'x_t' }, { name: 'k' });
    const { model: out } = canonicalize(model);
    const ops = new Map(out.graph!.node!.map((n) => [n.output![0], n.opType]));
    expect(ops.get('x_t')).toBe('Transpose');
    expect(ops.get('k')).toBe('Constant');
  });
});
