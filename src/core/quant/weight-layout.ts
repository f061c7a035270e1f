/**
 * A weight with its output channels on axis 0, the layout quantizers and the engine's kernels
 * take: Gemm(transB = 0) and MatMul weights, stored [in, out], are transposed; `back` returns
 * integer codes to the stored layout for export.
 */
export function channelsFirst(w: Float32Array, dims: readonly number[], axis: number): { data: Float32Array; dims: number[]; back: (codes: Int32Array) => Int32Array } {
  if (axis === 0) return { data: w, dims: [...dims], back: (c) => c };
  const [K, N] = dims as [number, number];
  const t = new Float32Array(w.length);
  for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) t[j * K + k] = w[k * N + j]!;
  return {
    data: t,
    dims: [N, K],
    back: (c) => {
      const o = new Int32Array(c.length);
      for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) o[k * N + j] = c[j * K + k]!;
      return o;
    },
  };
}
