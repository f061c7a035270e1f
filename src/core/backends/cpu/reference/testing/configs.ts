import type { Conv2dAttrs } from '../conv2d';
import { conv2dAttrs } from '../conv2d';
import { pool2dAttrs, type Pool2dAttrs } from '../pooling';

/*
 * Op configurations shared by the forward (ONNX Runtime) and backward (finite difference) tests, and
 * meant to be reused by every fast backend's parity tests.
 */

export interface ConvConfig {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  attrs: Conv2dAttrs;
  bias: boolean;
}

export const CONV_CONFIGS: ConvConfig[] = [
  { name: '3×3, pad 1', x: [2, 3, 8, 8], w: [4, 3, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1] }), bias: true },
  { name: 'stride 2', x: [2, 3, 9, 9], w: [5, 3, 3, 3], attrs: conv2dAttrs({ strides: [2, 2], pads: [1, 1, 1, 1] }), bias: true },
  { name: 'asymmetric pads, 3×2 kernel, strides [2, 1]', x: [1, 3, 7, 6], w: [4, 3, 3, 2], attrs: conv2dAttrs({ strides: [2, 1], pads: [0, 1, 2, 0] }), bias: true },
  { name: 'dilation 2', x: [1, 2, 9, 9], w: [3, 2, 3, 3], attrs: conv2dAttrs({ pads: [2, 2, 2, 2], dilations: [2, 2] }), bias: true },
  { name: 'dilations [2, 1], stride 2', x: [1, 2, 9, 8], w: [3, 2, 3, 3], attrs: conv2dAttrs({ strides: [2, 2], pads: [1, 0, 1, 1], dilations: [2, 1] }), bias: true },
  { name: 'group 2', x: [2, 4, 6, 6], w: [6, 2, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1], group: 2 }), bias: true },
  { name: 'depthwise, stride 2', x: [2, 5, 7, 7], w: [5, 1, 3, 3], attrs: conv2dAttrs({ strides: [2, 2], pads: [1, 1, 1, 1], group: 5 }), bias: true },
  { name: 'depthwise, multiplier 2', x: [1, 3, 6, 6], w: [6, 1, 3, 3], attrs: conv2dAttrs({ pads: [1, 1, 1, 1], group: 3 }), bias: true },
  { name: '1×1', x: [2, 6, 5, 5], w: [4, 6, 1, 1], attrs: conv2dAttrs(), bias: true },
  { name: '1×1 stride 2 (projection shortcut)', x: [2, 4, 6, 6], w: [8, 4, 1, 1], attrs: conv2dAttrs({ strides: [2, 2] }), bias: true },
  { name: 'no bias', x: [1, 3, 6, 6], w: [2, 3, 3, 3], attrs: conv2dAttrs(), bias: false },
];

/** Configurations with `countIncludePad` only mean something to AveragePool; MaxPool tests skip them. */
export interface PoolConfig {
  name: string;
  x: [number, number, number, number];
  attrs: Pool2dAttrs;
}

export const POOL_CONFIGS: PoolConfig[] = [
  { name: '3×3 stride 2 pad 1 (ResNet stem)', x: [2, 3, 9, 9], attrs: pool2dAttrs([3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }) },
  { name: '2×2 stride 2', x: [1, 2, 6, 6], attrs: pool2dAttrs([2, 2], { strides: [2, 2] }) },
  { name: '2×3 kernel, asymmetric pads', x: [1, 2, 5, 7], attrs: pool2dAttrs([2, 3], { strides: [1, 2], pads: [1, 0, 0, 2] }) },
  { name: '3×3 stride 1 pad 1 (overlapping windows)', x: [1, 2, 5, 5], attrs: pool2dAttrs([3, 3], { pads: [1, 1, 1, 1] }) },
  { name: '3×3 stride 1 pad 1, count_include_pad', x: [1, 2, 5, 5], attrs: pool2dAttrs([3, 3], { pads: [1, 1, 1, 1], countIncludePad: true }) },
];
