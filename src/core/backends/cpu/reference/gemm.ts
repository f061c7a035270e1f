import { alloc, type Floats, type Nd } from './nd';

/*
 * Two spellings of a fully connected layer, as ONNX models carry them: Gemm with W stored
 * [out, in] (transB = 1, alpha = beta = 1, the PyTorch Linear export) and MatMul with W stored
 * [K, N]. Row sums run in a float64 scratch row, so the float32 path accumulates in float64 too
 * while the inner loops stay contiguous.
 */

function matrix(t: Nd<Floats>, op: string): [number, number] {
  const [r, c] = t.shape;
  if (t.shape.length !== 2 || r === undefined || c === undefined) throw new Error(`${op}: expected a matrix, got [${t.shape.join(', ')}]`);
  return [r, c];
}

/** y[n, o] = Σ_i x[n, i]·W[o, i] + b[o] */
export function gemmForward<D extends Floats>(x: Nd<D>, w: Nd<D>, b: Nd<D> | null): Nd<D> {
  const [rows, inF] = matrix(x, 'gemm');
  const [outF, wIn] = matrix(w, 'gemm weight');
  if (wIn !== inF) throw new Error(`gemm: x has ${inF} features, W [${w.shape.join(', ')}] expects ${wIn}`);
  const X = x.data;
  const W = w.data;
  const y = alloc(X, rows * outF);
  for (let n = 0; n < rows; n++) {
    for (let o = 0; o < outF; o++) {
      let acc = b ? b.data[o]! : 0;
      const xr = n * inF;
      const wr = o * inF;
      for (let i = 0; i < inF; i++) acc += X[xr + i]! * W[wr + i]!;
      y[n * outF + o] = acc;
    }
  }
  return { shape: [rows, outF], data: y };
}

export interface LinearGrads<D extends Floats> {
  dx: Nd<D>;
  dw: Nd<D>;
  db: Nd<D>;
}

export function gemmBackward<D extends Floats>(x: Nd<D>, w: Nd<D>, dy: Nd<D>): LinearGrads<D> {
  const [rows, inF] = matrix(x, 'gemm');
  const [outF] = matrix(w, 'gemm weight');
  const X = x.data;
  const W = w.data;
  const DY = dy.data;
  if (DY.length !== rows * outF) throw new Error(`gemm backward: dy is [${dy.shape.join(', ')}], expected [${rows}, ${outF}]`);
  const row = new Float64Array(inF);

  // dx[n, :] = Σ_o dy[n, o]·W[o, :]
  const dx = alloc(X, X.length);
  for (let n = 0; n < rows; n++) {
    row.fill(0);
    for (let o = 0; o < outF; o++) {
      const d = DY[n * outF + o]!;
      const wr = o * inF;
      for (let i = 0; i < inF; i++) row[i]! += d * W[wr + i]!;
    }
    dx.set(row, n * inF);
  }

  // dW[o, :] = Σ_n dy[n, o]·x[n, :]
  const dW = alloc(X, W.length);
  const db = alloc(X, outF);
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    let bias = 0;
    for (let n = 0; n < rows; n++) {
      const d = DY[n * outF + o]!;
      bias += d;
      const xr = n * inF;
      for (let i = 0; i < inF; i++) row[i]! += d * X[xr + i]!;
    }
    dW.set(row, o * inF);
    db[o] = bias;
  }
  return { dx: { shape: [...x.shape], data: dx }, dw: { shape: [...w.shape], data: dW }, db: { shape: [outF], data: db } };
}

/** Leading dimensions of x are batch: x [..., K] is treated as a [M, K] matrix. */
function rowsOf(x: Nd<Floats>, k: number): number {
  const last = x.shape[x.shape.length - 1];
  if (last !== k) throw new Error(`matmul: x [${x.shape.join(', ')}] does not end in K = ${k}`);
  return x.data.length / k;
}

/** y[..., n] = Σ_k x[..., k]·W[k, n] */
export function matmulForward<D extends Floats>(x: Nd<D>, w: Nd<D>): Nd<D> {
  const [K, N] = matrix(w, 'matmul weight');
  const M = rowsOf(x, K);
  const X = x.data;
  const W = w.data;
  const y = alloc(X, M * N);
  const row = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    row.fill(0);
    for (let k = 0; k < K; k++) {
      const a = X[m * K + k]!;
      const wr = k * N;
      for (let n = 0; n < N; n++) row[n]! += a * W[wr + n]!;
    }
    y.set(row, m * N);
  }
  return { shape: [...x.shape.slice(0, -1), N], data: y };
}

export function matmulBackward<D extends Floats>(x: Nd<D>, w: Nd<D>, dy: Nd<D>): { dx: Nd<D>; dw: Nd<D> } {
  const [K, N] = matrix(w, 'matmul weight');
  const M = rowsOf(x, K);
  const X = x.data;
  const W = w.data;
  const DY = dy.data;
  if (DY.length !== M * N) throw new Error(`matmul backward: dy is [${dy.shape.join(', ')}], expected ${M}×${N} values`);

  // dx[m, k] = Σ_n dy[m, n]·W[k, n]: two contiguous rows
  const dx = alloc(X, X.length);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      let acc = 0;
      for (let n = 0; n < N; n++) acc += DY[m * N + n]! * W[k * N + n]!;
      dx[m * K + k] = acc;
    }
  }

  // dW[k, :] = Σ_m x[m, k]·dy[m, :]
  const dW = alloc(X, W.length);
  const row = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    row.fill(0);
    for (let m = 0; m < M; m++) {
      const a = X[m * K + k]!;
      const dr = m * N;
      for (let n = 0; n < N; n++) row[n]! += a * DY[dr + n]!;
    }
    dW.set(row, k * N);
  }
  return { dx: { shape: [...x.shape], data: dx }, dw: { shape: [...w.shape], data: dW } };
}
