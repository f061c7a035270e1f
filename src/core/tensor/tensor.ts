/**
 * The one tensor type of the reconstruction engine: a dense row-major (NCHW for images) float32
 * array and its shape. Kept a plain object, not a class, so tensors cross worker boundaries and
 * WASM/WebGPU backends as they are.
 */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A tensor over `data` (not copied), or over zeros; throws when the lengths disagree. */
export function tensor(shape: readonly number[], data?: Float32Array): Tensor {
  const n = size(shape);
  if (data && data.length !== n) throw new Error(`tensor: shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  return { shape: [...shape], data: data ?? new Float32Array(n) };
}

export function zerosLike(t: Tensor): Tensor {
  return { shape: [...t.shape], data: new Float32Array(t.data.length) };
}
