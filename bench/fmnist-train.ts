import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { writeNpy } from '../src/core/data/npy';
import { rng } from '../src/core/random';
import type { ImageFile } from '../src/core/data/image-set';

/** Debian's dataset-fashion-mnist: the 60,000 training images the demo model learned from. */
export const FMNIST_TRAIN = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';

/**
 * `n` training images of Fashion-MNIST as calibration samples (a seeded sample without
 * replacement), each a 1×28×28 float .npy in [0, 1], the scale the PNG decoder gives 8-bit pixels.
 * For calibration sets larger than the 256 the demo ships.
 */
export function fmnistTrainImages(n: number, seed: number): ImageFile[] {
  const raw = gunzipSync(readFileSync(FMNIST_TRAIN));
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (view.getUint32(0) !== 0x803) throw new Error(`${FMNIST_TRAIN}: not an idx3 image file`);
  const count = view.getUint32(4);
  const [h, w] = [view.getUint32(8), view.getUint32(12)];
  const order = Array.from({ length: count }, (_, i) => i);
  const rand = rng(seed);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (count - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.slice(0, n).map((id) => {
    const pixels = raw.subarray(16 + id * h * w, 16 + (id + 1) * h * w);
    return { path: `fmnist-train/${String(id).padStart(5, '0')}.npy`, bytes: writeNpy([1, h, w], Float32Array.from(pixels, (p) => p / 255)) };
  });
}
