import type { DecodedImage } from './png';
import { preprocessInto, type PreprocessSpec } from './preprocess';

/** An image as the model sees it, brought back to display range: RGBA, 8 bits, row-major. */
export interface PreviewImage {
  readonly path: string;
  readonly width: number;
  readonly height: number;
  readonly rgba: Uint8ClampedArray;
}

/**
 * Preprocesses `img` exactly as a run does and undoes only the normalisation, (x · std + mean),
 * so that the picture shows the resize, crop and channel conversion the model gets (mean and std
 * show in the predictions made on the returned input, not in the picture).
 */
export function previewImage(img: DecodedImage, spec: PreprocessSpec, path: string): { input: Float32Array; preview: PreviewImage } {
  const [h, w] = spec.size;
  const C = spec.channels;
  const input = new Float32Array(C * h * w);
  preprocessInto(img, spec, input, 0);
  const rgba = new Uint8ClampedArray(h * w * 4);
  for (let c = 0; c < 3; c++) {
    // a grey model's single plane fills all three display channels
    const k = C === 1 ? 0 : c;
    const mean = spec.mean[k] ?? spec.mean[0]!;
    const std = spec.std[k] ?? spec.std[0]!;
    for (let p = 0; p < h * w; p++) rgba[p * 4 + c] = Math.round((input[k * h * w + p]! * std + mean) * 255);
  }
  for (let p = 0; p < h * w; p++) rgba[p * 4 + 3] = 255;
  return { input, preview: { path, width: w, height: h, rgba } };
}

/** The `k` most probable classes of one output row (softmax of logits), most probable first; ties by lower index. */
export function topClasses(row: Float32Array, k: number): { index: number; probability: number }[] {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return Array.from(row.keys())
    .sort((a, b) => row[b]! - row[a]! || a - b)
    .slice(0, k)
    .map((index) => ({ index, probability: Math.exp(row[index]! - max) / sum }));
}
