import type { Nd } from '../backends/cpu/reference';
import { zeros32 } from '../tensor/buffer-pool';

/** NumPy/ONNX multidirectional broadcasting of two shapes. */
export function broadcastShape(a: readonly number[], b: readonly number[], op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`${op}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    out.push(Math.max(x, y));
  }
  return out;
}

/**
 * For each element of a tensor of shape `out`, the flat index of the element of a tensor of shape
 * `from` that broadcasting reads. Built once per shape pair and kept by the kernel: the forward
 * and the gradient reduction both walk it.
 */
export function broadcastIndex(out: readonly number[], from: readonly number[]): Int32Array {
  const n = out.length;
  const size = out.reduce((p, d) => p * d, 1);
  const idx = new Int32Array(size);
  const fromPadded = [...Array(n - from.length).fill(1), ...from];
  const strides = new Array<number>(n).fill(0);
  let s = 1;
  for (let i = n - 1; i >= 0; i--) {
    strides[i] = fromPadded[i] === 1 ? 0 : s;
    s *= fromPadded[i]!;
  }
  const coord = new Array<number>(n).fill(0);
  let at = 0;
  for (let k = 0; k < size; k++) {
    idx[k] = at;
    for (let i = n - 1; i >= 0; i--) {
      coord[i]!++;
      at += strides[i]!;
      if (coord[i]! < out[i]!) break;
      at -= strides[i]! * out[i]!;
      coord[i] = 0;
    }
  }
  return idx;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** A binary element-wise op with broadcasting; index maps are cached per input shapes. */
export class Broadcaster {
  private key = '';
  private ia: Int32Array | null = null;
  private ib: Int32Array | null = null;
  private shape: number[] = [];

  constructor(private readonly op: string) {}

  plan(a: Nd, b: Nd): { shape: number[]; ia: Int32Array | null; ib: Int32Array | null } {
    const key = `${a.shape.join(',')}|${b.shape.join(',')}`;
    if (key !== this.key) {
      this.key = key;
      this.shape = broadcastShape(a.shape, b.shape, this.op);
      this.ia = sameShape(a.shape, this.shape) ? null : broadcastIndex(this.shape, a.shape);
      this.ib = sameShape(b.shape, this.shape) ? null : broadcastIndex(this.shape, b.shape);
    }
    return { shape: this.shape, ia: this.ia, ib: this.ib };
  }
}

/** Sums a gradient of the broadcast shape back onto an input's shape. */
export function reduceTo(dy: Float32Array, idx: Int32Array | null, shape: readonly number[]): Nd {
  if (!idx) return { shape: [...shape], data: dy };
  const out = zeros32(shape.reduce((p, d) => p * d, 1));
  for (let k = 0; k < dy.length; k++) out[idx[k]!]! += dy[k]!;
  return { shape: [...shape], data: out };
}
