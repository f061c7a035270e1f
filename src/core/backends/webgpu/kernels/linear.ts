import type { GemmSpec } from '../skeletons';

/**
 * C[m, n] = Σ_k op(A)[m, k]·op(B)[k, n] (+ bias[n]): Gemm and MatMul forward, and their
 * gradients (dx = dy·W or dy·Wᵀ, dW = dyᵀ·x or xᵀ·dy) by choosing the transposes.
 */
const specs = new Map<string, GemmSpec>();

export function matmulSpec(transA: boolean, transB: boolean, bias: boolean): GemmSpec {
  const key = `${transA}${transB}${bias}`;
  let s = specs.get(key);
  if (!s) {
    s = {
      label: `matmul${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}${bias ? ' +bias' : ''}`,
      params: {},
      bindings: [
        { name: 'A', access: 'read' },
        { name: 'B', access: 'read' },
        { name: 'Bias', access: 'read' },
        { name: 'C', access: 'read_write' },
      ],
      prelude: '',
      loadA: transA ? '  return A[k * p.M + m];' : '  return A[m * p.K + k];',
      loadB: transB ? '  return B[n * p.K + k];' : '  return B[k * p.N + n];',
      epilogue: bias ? '  C[m * p.N + n] = v + Bias[n];' : '  C[m * p.N + n] = v;',
      aFast: transA ? 'm' : 'k',
      bFast: transB ? 'k' : 'n',
    };
    specs.set(key, s);
  }
  return s;
}
