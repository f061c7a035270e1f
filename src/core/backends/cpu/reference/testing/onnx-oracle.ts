import { ModelSession } from '../../../../eval/runtime';
import { encodeModel } from '../../../../onnx/codec';
import { AttributeType, DataType, type Attribute, type NodeProto, type TensorProto } from '../../../../onnx/schema';
import type { Tensor } from '../../../../tensor/tensor';

/** A graph that reads the input `x` and writes the output `y`; every other operand is an initializer. */
export interface OracleGraph {
  nodes: NodeProto[];
  initializers?: TensorProto[];
  /** 13 unless an op needs newer (HardSwish 14, 4-bit QDQ 21). */
  opset?: number;
}

export function floatAttr(name: string, f: number): Attribute {
  return { name, type: AttributeType.FLOAT, f };
}

/** Runs `x` through ONNX Runtime (WASM, graph optimisations off, so each node runs as written). */
export async function runOnnx(g: OracleGraph, x: Tensor): Promise<Tensor> {
  const opset = g.opset ?? 13;
  const bytes = encodeModel({
    irVersion: opset >= 21 ? 10 : 8,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'lowbit-reference-tests',
    graph: {
      name: 'oracle',
      node: g.nodes,
      initializer: g.initializers ?? [],
      input: [{ name: 'x', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: x.shape.map((d) => ({ dimValue: d })) } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: DataType.FLOAT } } }],
    },
  });
  const session = await ModelSession.create(bytes, 'none');
  try {
    const y = (await session.run(x.data, x.shape)).get('y');
    if (!y) throw new Error('ONNX Runtime returned no output "y"');
    return { shape: [...y.dims], data: y.data };
  } finally {
    await session.release();
  }
}
