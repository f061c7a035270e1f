import { size } from '../../../tensor/tensor';
import { scratch32, zeros32 } from '../../../tensor/buffer-pool';

/**
 * Every reference kernel is generic over its element type. Float32 is what the engine runs; float64
 * lets tests check the backward passes against finite differences at ~1e-8 instead of ~1e-3, so a
 * wrong index shows up as a failure rather than as noise.
 */
export type Floats = Float32Array | Float64Array;

/** A tensor whose data may be float64; `Nd<Float32Array>` is exactly a `Tensor`. */
export interface Nd<D extends Floats = Float32Array> {
  readonly shape: readonly number[];
  readonly data: D;
}

/** A zeroed array of the same element type as `like` (float32 from the active buffer pool, if any). */
export function alloc<D extends Floats>(like: D, n: number): D {
  return (like instanceof Float64Array ? new Float64Array(n) : zeros32(n)) as D;
}

/** Like `alloc`, for an output the caller writes in full: a pooled buffer is not cleared first. */
export function allocOut<D extends Floats>(like: D, n: number): D {
  return (like instanceof Float64Array ? new Float64Array(n) : scratch32(n)) as D;
}

export function nd<D extends Floats>(shape: readonly number[], data: D): Nd<D> {
  if (data.length !== size(shape)) throw new Error(`shape [${shape.join(', ')}] does not match ${data.length} values`);
  return { shape: [...shape], data };
}

export function zeros<D extends Floats>(like: D, shape: readonly number[]): Nd<D> {
  return { shape: [...shape], data: alloc(like, size(shape)) };
}

export function copy<D extends Floats>(t: Nd<D>): Nd<D> {
  return { shape: [...t.shape], data: t.data.slice() as D };
}

export function assertSameShape(a: Nd<Floats>, b: Nd<Floats>, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
  }
}

/** [N, C, H, W] of a rank-4 tensor. */
export function nchw(t: Nd<Floats>, op: string): [number, number, number, number] {
  const [n, c, h, w] = t.shape;
  if (t.shape.length !== 4 || n === undefined || c === undefined || h === undefined || w === undefined) {
    throw new Error(`${op}: expected an NCHW tensor, got shape [${t.shape.join(', ')}]`);
  }
  return [n, c, h, w];
}
