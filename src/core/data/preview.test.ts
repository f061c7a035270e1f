import { describe, expect, it } from 'vitest';
import { previewImage, topClasses } from './preview';
import { FASHION_MNIST, IMAGENET } from './preprocess';
import { IMAGENET_CLASS_NAMES, classLabel } from './class-names';
import type { DecodedImage } from './png';

/** A w×h RGB image whose pixel (x, y) is (x, y, x + y) mod 256. */
function ramp(w: number, h: number): DecodedImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([x % 256, y % 256, (x + y) % 256], (y * w + x) * 3);
  return { width: w, height: h, channels: 3, bitDepth: 8, data };
}

describe('preprocessing preview', () => {
  it('undoes only the normalisation: at the model size, the preview is the image itself', () => {
    const img = ramp(224, 224);
    const { input, preview } = previewImage(img, { ...IMAGENET, resize: undefined } as typeof IMAGENET, 'a.png');
    expect([preview.width, preview.height, input.length]).toEqual([224, 224, 3 * 224 * 224]);
    // the model input is normalised: red at x = 0 is (0 − 0.485) / 0.229
    expect(input[0]).toBeCloseTo(-0.485 / 0.229, 5);
    for (const [x, y] of [[0, 0], [17, 3], [223, 223], [100, 200]] as const) {
      const o = (y * 224 + x) * 4;
      expect(Array.from(preview.rgba.subarray(o, o + 4))).toEqual([x, y, (x + y) % 256, 255]);
    }
  });

  it('shows the resize-and-crop: a 512×256 image (shorter side already 256) becomes its centre 224×224', () => {
    const img = ramp(512, 256);
    const { preview } = previewImage(img, IMAGENET, 'b.png');
    expect([preview.width, preview.height]).toEqual([224, 224]);
    // shorter side 256 → scale 1: the crop starts at x = (512 − 224) / 2 = 144, y = 16
    expect(Array.from(preview.rgba.subarray(0, 3))).toEqual([144, 16, 160]);
  });

  it('a grey model fills the three display channels from its one plane (luma of the colour image)', () => {
    const { preview } = previewImage(ramp(28, 28), FASHION_MNIST, 'c.png');
    const o = (5 * 28 + 9) * 4;
    expect(preview.rgba[o]).toBe(preview.rgba[o + 1]);
    expect(preview.rgba[o + 1]).toBe(preview.rgba[o + 2]);
    expect(preview.rgba[o]).toBe(Math.round(0.299 * 9 + 0.587 * 5 + 0.114 * 14));
  });
});

describe('top classes and their names', () => {
  it('ranks by probability, ties by lower index, probabilities from a softmax', () => {
    const top = topClasses(new Float32Array([1, 3, 3, 0]), 3);
    expect(top.map((t) => t.index)).toEqual([1, 2, 0]);
    const z = 2 * Math.exp(3) + Math.exp(1) + 1;
    expect(top[0]!.probability).toBeCloseTo(Math.exp(3) / z, 6);
  });

  it('ships the 1000 ImageNet class names in index order, and uses them only for 1000-way models', () => {
    expect(IMAGENET_CLASS_NAMES).toHaveLength(1000);
    expect(new Set(IMAGENET_CLASS_NAMES).size).toBe(1000);
    expect([0, 1, 207, 281, 340, 409, 950, 999].map((i) => IMAGENET_CLASS_NAMES[i])).toEqual(['tench', 'goldfish', 'golden retriever', 'tabby', 'zebra', 'analog clock', 'orange', 'toilet tissue']);
    expect(classLabel(207, 1000, null)).toBe('golden retriever');
    expect(classLabel(3, 10, ['a', 'b', 'c', 'Dress', 'e', 'f', 'g', 'h', 'i', 'j'])).toBe('Dress');
    expect(classLabel(3, 10, null)).toBe('class 3');
  });
});
