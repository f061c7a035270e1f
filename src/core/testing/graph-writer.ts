import type { Attribute, ModelProto, NodeProto, TensorProto } from '../onnx/schema';
import { AttributeType, DataType } from '../onnx/schema';
import { floatTensor } from '../onnx/tensor-data';
import { intAttr, intsAttr } from '../graph/attributes';
import { randn, rng } from '../random';

/**
 * Writes small CNN graphs node by node for tests: Conv + unfolded BN with
 * seeded random weights, so canonicalize has real work to do and ONNX Runtime can run the result.
 */
export class GraphWriter {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private readonly rand: () => number;

  constructor(seed: number) {
    this.rand = rng(seed);
  }

  private weight(name: string, dims: number[], scale: number): string {
    this.inits.push(floatTensor(name, dims, randn(dims.reduce((a, b) => a * b, 1), this.rand, scale)));
    return name;
  }

  private positive(name: string, n: number): string {
    this.inits.push(floatTensor(name, [n], Float32Array.from({ length: n }, () => 0.5 + this.rand())));
    return name;
  }

  op(opType: string, name: string, inputs: string[], attribute?: Attribute[]): string {
    this.nodes.push({ name, opType, input: inputs, output: [`${name}_out`], ...(attribute ? { attribute } : {}) });
    return `${name}_out`;
  }

  /** Conv `name` followed by BatchNormalization `${name}.bn`; `group` = cin makes it depthwise. */
  convBn(name: string, x: string, cin: number, cout: number, k: number, stride = 1, group = 1): string {
    const fanIn = (cin / group) * k * k;
    const attribute = [intsAttr('kernel_shape', [k, k]), intsAttr('strides', [stride, stride]), intsAttr('pads', Array(4).fill((k - 1) / 2)), intAttr('group', group)];
    const y = this.op('Conv', name, [x, this.weight(`${name}.weight`, [cout, cin / group, k, k], Math.sqrt(2 / fanIn))], attribute);
    return this.bn(`${name}.bn`, y, cout);
  }

  /** BatchNormalization `name` over `c` channels, with random statistics. */
  bn(name: string, x: string, c: number): string {
    return this.op('BatchNormalization', name, [x, this.positive(`${name}.gamma`, c), this.weight(`${name}.beta`, [c], 0.1), this.weight(`${name}.mean`, [c], 0.1), this.positive(`${name}.var`, c)], [
      { name: 'epsilon', type: AttributeType.FLOAT, f: 1e-5 },
    ]);
  }

  /** ReLU6 as PyTorch exports it at opset 13: Clip with constant min and max inputs, shared by all. */
  relu6(name: string, x: string): string {
    if (!this.inits.some((t) => t.name === 'relu6.min')) {
      this.inits.push(floatTensor('relu6.min', [], Float32Array.of(0)), floatTensor('relu6.max', [], Float32Array.of(6)));
    }
    return this.op('Clip', name, [x, 'relu6.min', 'relu6.max']);
  }

  /** Global average pooling, flatten and a linear layer 'fc' producing 'logits'. */
  head(x: string, cin: number, classes: number): void {
    const flat = this.op('Flatten', 'flatten', [this.op('GlobalAveragePool', 'pool', [x])]);
    this.nodes.push({
      name: 'fc',
      opType: 'Gemm',
      input: [flat, this.weight('fc.weight', [classes, cin], Math.sqrt(1 / cin)), this.weight('fc.bias', [classes], 0.1)],
      output: ['logits'],
      attribute: [intAttr('transB', 1)],
    });
  }

  model(name: string, inputDims: (number | string)[], classes: number): ModelProto {
    const tensorType = (dims: (number | string)[]) => ({
      tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
    });
    return {
      irVersion: 8,
      opsetImport: [{ domain: '', version: 13 }],
      producerName: 'lowbit-tests',
      graph: {
        name,
        node: this.nodes,
        initializer: this.inits,
        input: [{ name: 'input', type: tensorType(inputDims) }],
        output: [{ name: 'logits', type: tensorType(['batch', classes]) }],
      },
    };
  }
}
