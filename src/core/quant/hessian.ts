/*
 * Float64 linear algebra for Hessian-weighted weight solves (decoupleQ, GPTQ-style rounding):
 * H = E[x xᵀ] over a layer's input patches, its damping, Cholesky factors and the inverse's upper
 * factor. Dense, row-major, n×n in a Float64Array; n is a layer's fan-in (C·kh·kw), at most a few
 * thousand, so O(n³) once per layer is affordable and the inner loops stay simple.
 */

/** Accumulates Σ x xᵀ over rows of `x` ([rows, n]) into `h` (upper and lower triangles both). */
export function accumulateGram(h: Float64Array, x: Float32Array, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let i = 0; i < n; i++) {
      const xi = x[o + i]!;
      if (xi === 0) continue;
      const hi = i * n;
      for (let j = i; j < n; j++) h[hi + j]! += xi * x[o + j]!;
    }
  }
}

/** Mirrors the upper triangle into the lower one, divides by `count`, and adds `damp`·mean(diag) to the diagonal. */
export function finishHessian(h: Float64Array, n: number, count: number, damp: number): void {
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) h[j * n + i] = h[i * n + j]! /= count;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i]!;
  mean /= n;
  // a dead input (all-zero column) would make H singular: give it the mean instead
  for (let i = 0; i < n; i++) h[i * n + i]! += damp * mean + (h[i * n + i] === 0 ? mean || 1 : 0);
}

/** Lower Cholesky factor L with A = L Lᵀ, or null when A is not positive definite. */
export function cholesky(a: Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j]!;
    for (let k = 0; k < j; k++) d -= l[j * n + k]! ** 2;
    if (!(d > 0)) return null;
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = s / ljj;
    }
  }
  return l;
}

/** A⁻¹ from its lower Cholesky factor. */
export function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  // L⁻¹ by forward substitution, then A⁻¹ = L⁻ᵀ L⁻¹
  const li = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    li[j * n + j] = 1 / l[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= l[i * n + k]! * li[k * n + j]!;
      li[i * n + j] = s / l[i * n + i]!;
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += li[k * n + i]! * li[k * n + j]!;
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  return inv;
}

/**
 * The upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ U), the matrix GPTQ's column-by-column error
 * feedback reads. Damping is raised ×10 from `damp` until H factors, as decoupleQ's code retries.
 */
export function inverseUpperFactor(h: Float64Array, n: number): Float64Array {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i]!;
  mean = mean / n || 1;
  for (const extra of [0, 0.01, 0.1, 1, 10, 100]) {
    const a = Float64Array.from(h);
    for (let i = 0; i < n; i++) a[i * n + i]! += extra * mean;
    const l = cholesky(a, n);
    if (!l) continue;
    const inv = inverseFromCholesky(l, n);
    const li = cholesky(inv, n);
    if (!li) continue;
    // U = Lᵀ of the inverse's lower factor
    const u = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = li[j * n + i]!;
    return u;
  }
  throw new Error('the layer input Hessian could not be factored even with 100× damping');
}

/** (a − b)ᵀ H (a − b) for one row. */
export function weightedError(h: Float64Array, n: number, a: ArrayLike<number>, b: ArrayLike<number>, at = 0): number {
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = a[at + i]! - b[at + i]!;
  let e = 0;
  for (let i = 0; i < n; i++) {
    const di = d[i]!;
    if (di === 0) continue;
    let s = 0;
    const hi = i * n;
    for (let j = 0; j < n; j++) s += h[hi + j]! * d[j]!;
    e += di * s;
  }
  return e;
}

/** H·v for one row. */
export function matVec(h: Float64Array, n: number, v: ArrayLike<number>, at = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const hi = i * n;
    for (let j = 0; j < n; j++) s += h[hi + j]! * v[at + j]!;
    out[i] = s;
  }
  return out;
}
