import { allocOut, assertSameShape, type Floats, type Nd } from './nd';

/*
 * Activations and the two binary ops of CNN blocks. Backward passes take the forward *input* (not
 * the output) so every op can be recomputed from what a block caches. At kinks the derivative is
 * the one PyTorch uses (ReLU'(0) = 0, the clip range is open), so reconstructions match the
 * reference implementations step for step.
 */

function map<D extends Floats>(x: Nd<D>, f: (v: number) => number): Nd<D> {
  const X = x.data;
  const y = allocOut(X, X.length);
  for (let i = 0; i < X.length; i++) y[i] = f(X[i]!);
  return { shape: [...x.shape], data: y };
}

/** dy·f′(x), elementwise. */
function chain<D extends Floats>(x: Nd<D>, dy: Nd<D>, df: (v: number) => number, op: string): Nd<D> {
  assertSameShape(x, dy, op);
  const X = x.data;
  const DY = dy.data;
  const dx = allocOut(X, X.length);
  for (let i = 0; i < X.length; i++) dx[i] = DY[i]! * df(X[i]!);
  return { shape: [...x.shape], data: dx };
}

/*
 * ReLU and Clip, the activations of nearly every CNN block, are written out rather than passed to
 * `map`/`chain`: over tens of millions of elements per iteration, a call through a closure that
 * the loop cannot inline costs ~20 ns per element. ReLU on float32 goes further and works on the
 * bits: about half of a layer's pre-activations are negative in no predictable pattern, so a
 * compare-and-branch mispredicts on every other element (~8 ns each, measured), while masking
 * with the sign bit has no branch (~2 ns). The results are the branchy loop's: x > 0 keeps x (and
 * dy), everything else gives +0; a NaN with its sign bit clear passes, as in PyTorch.
 */
export function reluForward<D extends Floats>(x: Nd<D>): Nd<D> {
  const X = x.data;
  const y = allocOut(X, X.length);
  if (X instanceof Float32Array) {
    const xi = new Int32Array(X.buffer, X.byteOffset, X.length);
    const yi = new Int32Array(y.buffer, y.byteOffset, y.length);
    // bits & ~(sign mask): negatives and −0 become +0
    for (let i = 0; i < xi.length; i++) {
      const b = xi[i]!;
      yi[i] = b & ~(b >> 31);
    }
  } else {
    for (let i = 0; i < X.length; i++) {
      const v = X[i]!;
      y[i] = v > 0 ? v : 0;
    }
  }
  return { shape: [...x.shape], data: y };
}

export function reluBackward<D extends Floats>(x: Nd<D>, dy: Nd<D>): Nd<D> {
  assertSameShape(x, dy, 'relu');
  const X = x.data;
  const DY = dy.data;
  const dx = allocOut(X, X.length);
  if (X instanceof Float32Array && DY instanceof Float32Array) {
    const xi = new Int32Array(X.buffer, X.byteOffset, X.length);
    const di = new Int32Array(DY.buffer, DY.byteOffset, DY.length);
    const oi = new Int32Array(dx.buffer, dx.byteOffset, dx.length);
    // all ones exactly when the bits, read as an int, are > 0, i.e. x > 0 (or a NaN with sign clear)
    for (let i = 0; i < xi.length; i++) {
      const b = xi[i]!;
      oi[i] = di[i]! & (((0 - b) | 0) >> 31) & ~(b >> 31);
    }
  } else {
    for (let i = 0; i < X.length; i++) dx[i] = X[i]! > 0 ? DY[i]! : 0;
  }
  return { shape: [...x.shape], data: dx };
}

/**
 * ReLU (0, +∞), ReLU6 (0, 6) or any Clip with constant bounds: y = min(max(x, lo), hi). What a
 * convolution can have fused. The bounds are float32 values, as ONNX's Clip bounds are tensors of
 * the input's type; the gradient mask read from the output relies on it.
 */
export interface Clamp {
  readonly lo: number;
  readonly hi: number;
}

/** A clamp applied as its own pass: ReLU through the branch-free kernel, other ranges through Clip. */
export function clampForward(x: Nd, c: Clamp): Nd {
  return c.lo === 0 && c.hi === Infinity ? reluForward(x) : clipForward(x, c.lo, c.hi);
}

/** ONNX Clip with constant bounds; ReLU6 is clip(0, 6). */
export function clipForward<D extends Floats>(x: Nd<D>, min: number, max: number): Nd<D> {
  const X = x.data;
  const y = allocOut(X, X.length);
  for (let i = 0; i < X.length; i++) {
    const v = X[i]!;
    y[i] = v < min ? min : v > max ? max : v;
  }
  return { shape: [...x.shape], data: y };
}

export function clipBackward<D extends Floats>(x: Nd<D>, dy: Nd<D>, min: number, max: number): Nd<D> {
  assertSameShape(x, dy, 'clip');
  const X = x.data;
  const DY = dy.data;
  const dx = allocOut(X, X.length);
  for (let i = 0; i < X.length; i++) {
    const v = X[i]!;
    dx[i] = v > min && v < max ? DY[i]! : 0;
  }
  return { shape: [...x.shape], data: dx };
}

export const leakyReluForward = <D extends Floats>(x: Nd<D>, alpha: number): Nd<D> => map(x, (v) => (v > 0 ? v : alpha * v));
export const leakyReluBackward = <D extends Floats>(x: Nd<D>, dy: Nd<D>, alpha: number): Nd<D> => chain(x, dy, (v) => (v > 0 ? 1 : alpha), 'leakyRelu');

/** Written so that exp never overflows: large |v| saturates instead of producing NaN. */
export function sigmoid(v: number): number {
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}
export const sigmoidForward = <D extends Floats>(x: Nd<D>): Nd<D> => map(x, sigmoid);
export const sigmoidBackward = <D extends Floats>(x: Nd<D>, dy: Nd<D>): Nd<D> =>
  chain(x, dy, (v) => {
    const s = sigmoid(v);
    return s * (1 - s);
  }, 'sigmoid');

/** ONNX HardSigmoid: max(0, min(1, αx + β)); ONNX's defaults are α = 0.2, β = 0.5 (PyTorch's is α = 1/6). */
export const hardSigmoidForward = <D extends Floats>(x: Nd<D>, alpha: number, beta: number): Nd<D> =>
  map(x, (v) => Math.max(0, Math.min(1, alpha * v + beta)));
export const hardSigmoidBackward = <D extends Floats>(x: Nd<D>, dy: Nd<D>, alpha: number, beta: number): Nd<D> =>
  chain(x, dy, (v) => {
    const u = alpha * v + beta;
    return u > 0 && u < 1 ? alpha : 0;
  }, 'hardSigmoid');

/** x·hardSigmoid(x) with α = 1/6, β = 1/2, as ONNX HardSwish and torch.nn.Hardswish define it. */
export const hardSwishForward = <D extends Floats>(x: Nd<D>): Nd<D> => map(x, (v) => (v <= -3 ? 0 : v >= 3 ? v : (v * (v + 3)) / 6));
export const hardSwishBackward = <D extends Floats>(x: Nd<D>, dy: Nd<D>): Nd<D> =>
  chain(x, dy, (v) => (v < -3 ? 0 : v <= 3 ? (2 * v + 3) / 6 : 1), 'hardSwish');

/** Same-shape add (residual connections). */
export function addForward<D extends Floats>(a: Nd<D>, b: Nd<D>): Nd<D> {
  assertSameShape(a, b, 'add');
  const A = a.data;
  const B = b.data;
  const y = allocOut(A, A.length);
  for (let i = 0; i < A.length; i++) y[i] = A[i]! + B[i]!;
  return { shape: [...a.shape], data: y };
}

/** Both gradients are copies of dy, so a caller may accumulate into either without aliasing the other. */
export function addBackward<D extends Floats>(dy: Nd<D>): { da: Nd<D>; db: Nd<D> } {
  const copy = (): D => {
    const c = allocOut(dy.data, dy.data.length);
    c.set(dy.data);
    return c;
  };
  return { da: { shape: [...dy.shape], data: copy() }, db: { shape: [...dy.shape], data: copy() } };
}

/**
 * How many consecutive elements of `a` share one element of `b`. `b` must equal `a` on a leading
 * run of axes and be 1 on the rest: the same shape, or a squeeze-excitation gate [N, C, 1, 1].
 */
function broadcastRun(a: Nd<Floats>, b: Nd<Floats>): number {
  const bad = () => new Error(`mul: cannot broadcast [${b.shape.join(', ')}] over [${a.shape.join(', ')}]; only trailing 1s are supported`);
  if (a.shape.length !== b.shape.length) throw bad();
  let k = 0;
  while (k < a.shape.length && b.shape[k] === a.shape[k]) k++;
  for (let i = k; i < b.shape.length; i++) if (b.shape[i] !== 1) throw bad();
  return a.data.length / b.data.length;
}

export function mulForward<D extends Floats>(a: Nd<D>, b: Nd<D>): Nd<D> {
  const run = broadcastRun(a, b);
  const A = a.data;
  const B = b.data;
  const y = allocOut(A, A.length);
  for (let j = 0; j < B.length; j++) {
    const g = B[j]!;
    for (let i = j * run; i < (j + 1) * run; i++) y[i] = A[i]! * g;
  }
  return { shape: [...a.shape], data: y };
}

/** The gate's gradient sums over the positions it was broadcast to. */
export function mulBackward<D extends Floats>(a: Nd<D>, b: Nd<D>, dy: Nd<D>): { da: Nd<D>; db: Nd<D> } {
  const run = broadcastRun(a, b);
  assertSameShape(a, dy, 'mul');
  const A = a.data;
  const B = b.data;
  const DY = dy.data;
  const da = allocOut(A, A.length);
  const db = allocOut(A, B.length);
  for (let j = 0; j < B.length; j++) {
    const g = B[j]!;
    let acc = 0;
    for (let i = j * run; i < (j + 1) * run; i++) {
      da[i] = DY[i]! * g;
      acc += DY[i]! * A[i]!;
    }
    db[j] = acc;
  }
  return { da: { shape: [...a.shape], data: da }, db: { shape: [...b.shape], data: db } };
}
