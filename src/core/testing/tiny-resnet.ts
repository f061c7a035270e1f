import type { ModelProto, NodeProto, TensorProto } from '../onnx/schema';
import { DataType } from '../onnx/schema';
import { floatTensor } from '../onnx/tensor-data';
import { intAttr, intsAttr } from '../graph/attributes';
import { AttributeType } from '../onnx/schema';
import { randn, rng } from '../random';

export { randn, rng };

/**
 * A small residual CNN with unfolded BatchNorm, a projection shortcut, global pooling and a linear
 * head, written with the studio's own encoder: the shape of the demo model, at test size.
 */
export function tinyResNet(seed = 1, opts: { channels?: number; size?: number; classes?: number } = {}): ModelProto {
  const C = opts.channels ?? 4;
  const S = opts.size ?? 8;
  const K = opts.classes ?? 5;
  const rand = rng(seed);
  const inits: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  const w = (name: string, dims: number[], scale: number): string => {
    inits.push(floatTensor(name, dims, randn(dims.reduce((a, b) => a * b, 1), rand, scale)));
    return name;
  };
  const pos = (name: string, n: number): string => {
    inits.push(floatTensor(name, [n], Float32Array.from({ length: n }, () => 0.5 + rand())));
    return name;
  };
  const conv = (name: string, x: string, cin: number, cout: number, k: number, stride: number): string => {
    nodes.push({
      name,
      opType: 'Conv',
      input: [x, w(`${name}.weight`, [cout, cin, k, k], Math.sqrt(2 / (cin * k * k)))],
      output: [`${name}_out`],
      attribute: [intsAttr('kernel_shape', [k, k]), intsAttr('strides', [stride, stride]), intsAttr('pads', Array(4).fill((k - 1) / 2))],
    });
    return `${name}_out`;
  };
  const bn = (name: string, x: string, c: number): string => {
    nodes.push({
      name,
      opType: 'BatchNormalization',
      input: [x, pos(`${name}.gamma`, c), w(`${name}.beta`, [c], 0.1), w(`${name}.mean`, [c], 0.1), pos(`${name}.var`, c)],
      output: [`${name}_out`],
      attribute: [{ name: 'epsilon', type: AttributeType.FLOAT, f: 1e-5 }],
    });
    return `${name}_out`;
  };
  const op = (opType: string, name: string, inputs: string[]): string => {
    nodes.push({ name, opType, input: inputs, output: [`${name}_out`] });
    return `${name}_out`;
  };
  let x = op('Relu', 'stem.relu', [bn('stem.bn', conv('stem.conv', 'input', 1, C, 3, 1), C)]);
  // block 1: identity shortcut
  let y = op('Relu', 'b1.relu1', [bn('b1.bn1', conv('b1.conv1', x, C, C, 3, 1), C)]);
  y = bn('b1.bn2', conv('b1.conv2', y, C, C, 3, 1), C);
  x = op('Relu', 'b1.relu2', [op('Add', 'b1.add', [y, x])]);
  // block 2: stride 2, projection shortcut
  y = op('Relu', 'b2.relu1', [bn('b2.bn1', conv('b2.conv1', x, C, 2 * C, 3, 2), 2 * C)]);
  y = bn('b2.bn2', conv('b2.conv2', y, 2 * C, 2 * C, 3, 1), 2 * C);
  const sc = bn('b2.down.bn', conv('b2.down', x, C, 2 * C, 1, 2), 2 * C);
  x = op('Relu', 'b2.relu2', [op('Add', 'b2.add', [y, sc])]);
  x = op('Flatten', 'flatten', [op('GlobalAveragePool', 'pool', [x])]);
  nodes.push({
    name: 'fc',
    opType: 'Gemm',
    input: [x, w('fc.weight', [K, 2 * C], Math.sqrt(1 / (2 * C))), w('fc.bias', [K], 0.1)],
    output: ['logits'],
    attribute: [intAttr('transB', 1)],
  });
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
  });
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'lowbit-tests',
    graph: {
      name: 'tiny_resnet',
      node: nodes,
      initializer: inits,
      input: [{ name: 'input', type: tensorType(['batch', 1, S, S]) }],
      output: [{ name: 'logits', type: tensorType(['batch', K]) }],
    },
  };
}
