import type { ModelProto } from '../onnx/schema';
import { GraphWriter } from './graph-writer';

/**
 * A small residual CNN with unfolded BatchNorm, a projection shortcut, global pooling and a linear
 * head: the shape of the demo model, at test size. Input [batch, 1, size, size].
 */
export function tinyResNet(seed = 1, opts: { channels?: number; size?: number; classes?: number } = {}): ModelProto {
  const C = opts.channels ?? 4;
  const K = opts.classes ?? 5;
  const g = new GraphWriter(seed);
  let x = g.op('Relu', 'stem.relu', [g.convBn('stem.conv', 'input', 1, C, 3)]);
  // block 1: identity shortcut
  let y = g.op('Relu', 'b1.relu1', [g.convBn('b1.conv1', x, C, C, 3)]);
  y = g.convBn('b1.conv2', y, C, C, 3);
  x = g.op('Relu', 'b1.relu2', [g.op('Add', 'b1.add', [y, x])]);
  // block 2: stride 2, projection shortcut
  y = g.op('Relu', 'b2.relu1', [g.convBn('b2.conv1', x, C, 2 * C, 3, 2)]);
  y = g.convBn('b2.conv2', y, 2 * C, 2 * C, 3);
  const shortcut = g.convBn('b2.down', x, C, 2 * C, 1, 2);
  x = g.op('Relu', 'b2.relu2', [g.op('Add', 'b2.add', [y, shortcut])]);
  g.head(x, 2 * C, K);
  return g.model('tiny_resnet', ['batch', 1, opts.size ?? 8, opts.size ?? 8], K);
}
