import type { ImageBatches } from '../data/batches';
import type { ModelSession } from './runtime';
import { throwIfAborted, type Progress } from '../events';

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
  for (let b = 0; b < images.batches; b++) {
    throwIfAborted(signal);
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
