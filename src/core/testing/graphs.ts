import { AttributeType, type Attribute, type ModelProto } from '../onnx/schema';
import { intAttr, intsAttr } from '../graph/attributes';
import { GraphWriter } from './graph-writer';

/** One row of MobileNetV2's table: expansion t, output channels c, repeats n, first stride s. */
export type InvertedResidualSetting = readonly [t: number, c: number, n: number, s: number];

/**
 * A MobileNetV2 at test size (algorithms.md §1.7): 3×3 stride-2 stem + ReLU6; inverted residual
 * blocks `ir1`, `ir2`, … of [1×1 expand + ReLU6 (when t > 1)], 3×3 depthwise + ReLU6, 1×1 linear
 * projection, with the residual Add only when stride is 1 and in = out and no activation after it;
 * a final 1×1 conv `last.conv` + ReLU6, global pooling, flatten and the classifier `fc`.
 * The default settings give blocks without an Add (ir1, ir2, ir4) and with one (ir3, ir5).
 * Input: [batch, 3, size, size].
 */
export function mobileNetV2(
  seed = 1,
  opts: { stem?: number; last?: number; size?: number; classes?: number; settings?: readonly InvertedResidualSetting[] } = {},
): ModelProto {
  const stem = opts.stem ?? 8;
  const last = opts.last ?? 16;
  const classes = opts.classes ?? 5;
  const settings = opts.settings ?? [
    [1, 4, 1, 1],
    [6, 6, 2, 2],
    [6, 8, 2, 1],
  ];
  const g = new GraphWriter(seed);
  let x = g.relu6('stem.clip', g.convBn('stem.conv', 'input', 3, stem, 3, 2));
  let c = stem;
  let b = 0;
  for (const [t, cout, n, s] of settings) {
    for (let i = 0; i < n; i++) {
      const name = `ir${++b}`;
      const stride = i === 0 ? s : 1;
      const hidden = c * t;
      let y = t === 1 ? x : g.relu6(`${name}.expand.clip`, g.convBn(`${name}.expand`, x, c, hidden, 1));
      y = g.relu6(`${name}.dw.clip`, g.convBn(`${name}.dw`, y, hidden, hidden, 3, stride, hidden));
      y = g.convBn(`${name}.project`, y, hidden, cout, 1);
      x = stride === 1 && c === cout ? g.op('Add', `${name}.add`, [x, y]) : y;
      c = cout;
    }
  }
  x = g.relu6('last.clip', g.convBn('last.conv', x, c, last, 1));
  g.head(x, last, classes);
  return g.model('mobilenet_v2', ['batch', 3, opts.size ?? 16, opts.size ?? 16], classes);
}

/**
 * An Inception-style net whose branches re-join at a Concat, not an Add: stem 3×3 conv + ReLU, a
 * module `inc` of three branches (1×1; 1×1 → 3×3; 3×3 max-pool → 1×1) concatenated, a 1×1 conv
 * `mix.conv` + ReLU, then the pooled linear head `fc`. Input: [batch, 1, 8, 8].
 */
export function inceptionNet(seed = 1, classes = 5): ModelProto {
  const g = new GraphWriter(seed);
  const x = g.op('Relu', 'stem.relu', [g.convBn('stem.conv', 'input', 1, 4, 3)]);
  const a = g.op('Relu', 'inc.a.relu', [g.convBn('inc.a', x, 4, 2, 1)]);
  const b1 = g.op('Relu', 'inc.b1.relu', [g.convBn('inc.b1', x, 4, 2, 1)]);
  const b = g.op('Relu', 'inc.b2.relu', [g.convBn('inc.b2', b1, 2, 2, 3)]);
  const pool = g.op('MaxPool', 'inc.pool', [x], [intsAttr('kernel_shape', [3, 3]), intsAttr('strides', [1, 1]), intsAttr('pads', [1, 1, 1, 1])]);
  const p = g.op('Relu', 'inc.c.relu', [g.convBn('inc.c', pool, 4, 2, 1)]);
  const cat = g.op('Concat', 'inc.concat', [a, b, p], [intAttr('axis', 1)]);
  const y = g.op('Relu', 'mix.relu', [g.convBn('mix.conv', cat, 6, 4, 1)]);
  g.head(y, 4, classes);
  return g.model('inception_net', ['batch', 1, 8, 8], classes);
}

const floatAttr = (name: string, f: number): Attribute => ({ name, type: AttributeType.FLOAT, f });

/**
 * Squeeze-excitation blocks as torch.onnx writes MobileNetV3 and EfficientNet at opset 13:
 * hard-swish as x·HardSigmoid(x), SiLU as x·Sigmoid(x), and the excitation as
 * HardSigmoid(1×1(ReLU(1×1(pool(x))))) · x. Stem 3×3 s2 conv + hard-swish; `b1`: 1×1 expand +
 * SiLU, 3×3 depthwise s2 + SiLU, excitation `b1.se`, 1×1 linear projection (no add: stride 2);
 * `b2`: the same at stride 1 with the residual Add; a 1×1 conv `last.conv` + hard-swish and the
 * head `fc`. Input [batch, 3, 16, 16].
 */
export function squeezeExciteNet(seed = 1, classes = 5): ModelProto {
  const g = new GraphWriter(seed);
  const hswish = (name: string, x: string): string => g.op('Mul', `${name}.mul`, [x, g.op('HardSigmoid', `${name}.hsig`, [x], [floatAttr('alpha', 1 / 6)])]);
  const silu = (name: string, x: string): string => g.op('Mul', `${name}.mul`, [x, g.op('Sigmoid', `${name}.sig`, [x])]);
  const block = (name: string, x: string, c: number, stride: number): string => {
    const hidden = 2 * c;
    let y = silu(`${name}.expand.silu`, g.convBn(`${name}.expand`, x, c, hidden, 1));
    y = silu(`${name}.dw.silu`, g.convBn(`${name}.dw`, y, hidden, hidden, 3, stride, hidden));
    const s = g.op('Relu', `${name}.se.relu`, [g.convBn(`${name}.se.fc1`, g.op('GlobalAveragePool', `${name}.se.pool`, [y]), hidden, 4, 1)]);
    const gate = g.op('HardSigmoid', `${name}.se.hsig`, [g.convBn(`${name}.se.fc2`, s, 4, hidden, 1)], [floatAttr('alpha', 1 / 6)]);
    // torchvision multiplies scale · input
    y = g.convBn(`${name}.project`, g.op('Mul', `${name}.se.scale`, [gate, y]), hidden, c, 1);
    return stride === 1 ? g.op('Add', `${name}.add`, [y, x]) : y;
  };
  let x = hswish('stem.hswish', g.convBn('stem.conv', 'input', 3, 8, 3, 2));
  x = block('b1', x, 8, 2);
  x = block('b2', x, 8, 1);
  x = hswish('last.hswish', g.convBn('last.conv', x, 8, 16, 1));
  g.head(x, 16, classes);
  return g.model('squeeze_excite_net', ['batch', 3, 16, 16], classes);
}

/**
 * A SqueezeNet at test size: stem 3×3 s2 conv + ReLU; Fire modules `fire1` and `fire2` (1×1
 * squeeze + ReLU feeding a 1×1 and a 3×3 expand, each + ReLU, concatenated) with a 2×2 max-pool
 * between; the classifier `cls`, a 1×1 conv to the classes + ReLU, then global pooling and a
 * flatten that writes the logits. Input [batch, 3, 16, 16].
 */
export function fireNet(seed = 1, classes = 5): ModelProto {
  const g = new GraphWriter(seed);
  const relu = (name: string, x: string): string => g.op('Relu', `${name}.relu`, [x]);
  const fire = (name: string, x: string, cin: number): string => {
    const s = relu(`${name}.squeeze`, g.convBn(`${name}.squeeze`, x, cin, 4, 1));
    const a = relu(`${name}.expand1`, g.convBn(`${name}.expand1`, s, 4, 8, 1));
    const b = relu(`${name}.expand3`, g.convBn(`${name}.expand3`, s, 4, 8, 3));
    return g.op('Concat', `${name}.concat`, [a, b], [intAttr('axis', 1)]);
  };
  let x = relu('stem', g.convBn('stem.conv', 'input', 3, 8, 3, 2));
  x = fire('fire1', x, 8);
  x = g.op('MaxPool', 'pool1', [x], [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])]);
  x = fire('fire2', x, 16);
  const pooled = g.op('GlobalAveragePool', 'pool', [relu('cls', g.convBn('cls', x, 16, classes, 1))]);
  g.nodes.push({ name: 'flatten', opType: 'Flatten', input: [pooled], output: ['logits'] });
  return g.model('fire_net', ['batch', 3, 16, 16], classes);
}

/**
 * A DenseNet at test size, as torch.onnx writes torchvision's: stem 3×3 conv + ReLU + 2×2
 * max-pool; dense block `d1` of three dense layers (BN → ReLU → 1×1 conv → ReLU → 3×3 conv, growth
 * 4), each reading one N-ary Concat of the block input and all earlier outputs (a one-input Concat
 * for the first), and the block's output Concat; transition `t1` (BN → ReLU → 1×1 conv → 2×2
 * average pool); dense block `d2` of two layers; BN → ReLU and the head `fc`. Input [batch, 3, 16, 16].
 */
export function denseNet(seed = 1, classes = 5): ModelProto {
  const g = new GraphWriter(seed);
  const growth = 4;
  const denseBlock = (name: string, x: string, cin: number, layers: number): [string, number] => {
    const features = [x];
    for (let i = 1; i <= layers; i++) {
      const c = cin + (i - 1) * growth;
      const l = `${name}.l${i}`;
      const cat = g.op('Concat', `${l}.concat`, [...features], [intAttr('axis', 1)]);
      const pre = g.op('Relu', `${l}.relu1`, [g.bn(`${l}.norm1`, cat, c)]);
      const mid = g.op('Relu', `${l}.relu2`, [g.convBn(`${l}.conv1`, pre, c, 2 * growth, 1)]);
      features.push(g.convBn(`${l}.conv2`, mid, 2 * growth, growth, 3));
    }
    return [g.op('Concat', `${name}.concat`, features, [intAttr('axis', 1)]), cin + layers * growth];
  };
  let x = g.op('Relu', 'stem.relu', [g.convBn('stem.conv', 'input', 3, 8, 3)]);
  x = g.op('MaxPool', 'stem.pool', [x], [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])]);
  let c: number;
  [x, c] = denseBlock('d1', x, 8, 3);
  x = g.op('Relu', 't1.relu', [g.bn('t1.norm', x, c)]);
  x = g.op('AveragePool', 't1.pool', [g.convBn('t1.conv', x, c, c / 2, 1)], [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])]);
  [x, c] = denseBlock('d2', x, c / 2, 2);
  x = g.op('Relu', 'final.relu', [g.bn('final.norm', x, c)]);
  g.head(x, c, classes);
  return g.model('dense_net', ['batch', 3, 16, 16], classes);
}
