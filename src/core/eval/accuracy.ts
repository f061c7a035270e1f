import type { ImageBatches } from '../data/batches';
import type { ModelSession } from './runtime';
import { cooperative, type Progress } from '../events';

export interface Accuracy {
  /** Fractions in 0..1. */
  readonly top1: number;
  readonly top5: number;
  readonly count: number;
}

export class LabelMismatchError extends Error {
  override name = 'LabelMismatchError';
}

/** Top-1/top-5 of `session` on labelled images. Ties rank by lower class index, deterministically. */
export async function evaluateAccuracy(session: ModelSession, images: ImageBatches, labels: readonly number[], onProgress?: Progress, signal?: AbortSignal): Promise<Accuracy> {
  let hit1 = 0;
  let hit5 = 0;
  const output = session.outputNames[0]!;
  const pace = cooperative(signal);
  for (let b = 0; b < images.batches; b++) {
    await pace();
    const { data, shape, start } = await images.batch(b);
    const logits = (await session.run(data, shape, [output])).get(output)!;
    const n = shape[0];
    const k = logits.data.length / n;
    for (let i = 0; i < n; i++) {
      const label = labels[start + i]!;
      if (label >= k) throw new LabelMismatchError(`the validation set has class index ${label}, but the model outputs only ${k} classes`);
      const row = logits.data.subarray(i * k, (i + 1) * k);
      const target = row[label]!;
      let rank = 0;
      for (let j = 0; j < k; j++) if (row[j]! > target || (row[j] === target && j < label)) rank++;
      if (rank === 0) hit1++;
      if (rank < 5) hit5++;
    }
    onProgress?.(b + 1, images.batches);
  }
  const count = images.count;
  return { top1: hit1 / count, top5: hit5 / count, count };
}

/** Every image's output row, in order: for fidelity where there are no labels. */
export async function collectLogits(session: ModelSession, images: ImageBatches, onProgress?: Progress, signal?: AbortSignal): Promise<{ data: Float32Array; classes: number }> {
  const output = session.outputNames[0]!;
  const parts: Float32Array[] = [];
  const pace = cooperative(signal);
  for (let b = 0; b < images.batches; b++) {
    await pace();
    const { data, shape } = await images.batch(b);
    parts.push((await session.run(data, shape, [output])).get(output)!.data.slice());
    onProgress?.(b + 1, images.batches);
  }
  const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return { data: all, classes: images.count ? all.length / images.count : 0 };
}

/** How closely a quantized model follows the float one, without labels. */
export interface Fidelity {
  /** Share of images whose top-1 class is the float model's. */
  readonly agreement: number;
  /** Mean cosine similarity of the output rows. */
  readonly cosine: number;
  readonly count: number;
}

export function fidelity(reference: { data: Float32Array; classes: number }, other: { data: Float32Array; classes: number }): Fidelity {
  const k = reference.classes;
  const n = k ? reference.data.length / k : 0;
  let agree = 0;
  let cos = 0;
  for (let i = 0; i < n; i++) {
    let ra = 0;
    let oa = 0;
    let dot = 0;
    let rr = 0;
    let oo = 0;
    for (let j = 0; j < k; j++) {
      const r = reference.data[i * k + j]!;
      const o = other.data[i * k + j]!;
      if (r > reference.data[i * k + ra]!) ra = j;
      if (o > other.data[i * k + oa]!) oa = j;
      dot += r * o;
      rr += r * r;
      oo += o * o;
    }
    if (ra === oa) agree++;
    cos += rr && oo ? dot / Math.sqrt(rr * oo) : rr === oo ? 1 : 0;
  }
  return { agreement: n ? agree / n : 0, cosine: n ? cos / n : 0, count: n };
}
