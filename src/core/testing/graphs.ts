import type { ModelProto } from '../onnx/schema';
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
