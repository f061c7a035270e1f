import type { GraphProto, NodeProto, TensorProto } from '../onnx/schema';

/** Producer/consumer look-ups over a graph. Rebuild after editing the graph: it is a snapshot. */
export class GraphIndex {
  readonly initializers = new Map<string, TensorProto>();
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly graphOutputs: Set<string>;

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer ?? []) this.initializers.set(t.name ?? '', t);
    for (const n of graph.node ?? []) {
      for (const o of n.output ?? []) if (o) this.producer.set(o, n);
      for (const i of n.input ?? []) {
        if (!i) continue;
        let list = this.consumers.get(i);
        if (!list) this.consumers.set(i, (list = []));
        list.push(n);
      }
    }
    this.graphOutputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  }

  /** A tensor is constant when it is an initializer or the output of a Constant node. */
  constant(name: string | undefined): TensorProto | undefined {
    if (!name) return undefined;
    const init = this.initializers.get(name);
    if (init) return init;
    const p = this.producer.get(name);
    if (p?.opType === 'Constant') return p.attribute?.find((a) => a.name === 'value')?.t;
    return undefined;
  }

  consumersOf(name: string): NodeProto[] {
    return this.consumers.get(name) ?? [];
  }

  /** True when `name` feeds exactly one node and is not a graph output. */
  soleUse(name: string): NodeProto | undefined {
    const c = this.consumersOf(name);
    return c.length === 1 && !this.graphOutputs.has(name) ? c[0] : undefined;
  }

  /** The graph inputs that are real data (not initializers listed as inputs, as IR < 4 requires). */
  dataInputs(): NonNullable<GraphProto['input']> {
    return (this.graph.input ?? []).filter((v) => !this.initializers.has(v.name ?? ''));
  }
}
