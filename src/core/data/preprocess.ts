import type { DecodedImage } from './png';

/**
 * How pixels become the model's input: scaled to [0, 1], resized, then (x − mean) / std per channel.
 * With `resize`, the shorter side is first scaled to that length and the centre `size` cropped
 * (ImageNet evaluation: resize 256, crop 224); without it the image is resized to `size` directly.
 */
export interface PreprocessSpec {
  readonly size: readonly [height: number, width: number];
  readonly resize?: number;
  readonly channels: 1 | 3;
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export const FASHION_MNIST: PreprocessSpec = { size: [28, 28], channels: 1, mean: [0.286], std: [0.353] };

/** torchvision's ImageNet evaluation transform (bilinear, without its antialiasing filter). */
export const IMAGENET: PreprocessSpec = { size: [224, 224], resize: 256, channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

export const PRESETS: Readonly<Record<string, PreprocessSpec>> = { fmnist: FASHION_MNIST, imagenet: IMAGENET };

export class PreprocessError extends Error {
  override name = 'PreprocessError';
}

/** Refuses a spec no image can be preprocessed with (the studio's fields and a CLI's flags can say anything). */
export function checkPreprocess(spec: PreprocessSpec): void {
  const C = spec.channels;
  if (C !== 1 && C !== 3) throw new PreprocessError(`${String(C)} channels; images have 1 or 3`);
  for (const d of spec.size) if (!Number.isInteger(d) || d < 1 || d > 4096) throw new PreprocessError(`size ${spec.size.join('×')}: each side must be a whole number from 1 to 4096`);
  if (spec.resize !== undefined && (!Number.isInteger(spec.resize) || spec.resize < Math.min(...spec.size))) throw new PreprocessError(`resize ${spec.resize} must be a whole number no smaller than the crop`);
  if (spec.mean.length !== C && spec.mean.length !== 1) throw new PreprocessError(`mean has ${spec.mean.length} values for ${C} channels`);
  if (spec.std.length !== C && spec.std.length !== 1) throw new PreprocessError(`std has ${spec.std.length} values for ${C} channels`);
  if (spec.mean.some((m) => !Number.isFinite(m))) throw new PreprocessError('mean must be numbers');
  if (spec.std.some((s) => !(s > 0) || !Number.isFinite(s))) throw new PreprocessError('std must be positive numbers');
}

/** Reads one pixel channel in [0, 1], converting grey↔RGB (ITU-R 601 luma) and ignoring alpha. */
function sampler(img: DecodedImage, channels: 1 | 3): (x: number, y: number, c: number) => number {
  const full = img.bitDepth === 32 ? 1 : img.bitDepth === 16 ? 65535 : 255;
  const { data, width } = img;
  const ic = img.channels;
  const colour = ic >= 3;
  if (channels === 3 && !colour) return (x, y) => data[(y * width + x) * ic]! / full;
  if (channels === 1 && colour)
    return (x, y) => {
      const o = (y * width + x) * ic;
      return (0.299 * data[o]! + 0.587 * data[o + 1]! + 0.114 * data[o + 2]!) / full;
    };
  return (x, y, c) => data[(y * width + x) * ic + c]! / full;
}

/** Writes one image into `out` (CHW float32) at `offset`. Bilinear resize (half-pixel centres) when sizes differ. */
export function preprocessInto(img: DecodedImage, spec: PreprocessSpec, out: Float32Array, offset: number): void {
  const [h, w] = spec.size;
  const C = spec.channels;
  checkPreprocess(spec);
  const px = sampler(img, C);
  // output pixel (x, y) samples the source at ((x + ox + 0.5)·sx − 0.5, (y + oy + 0.5)·sy − 0.5)
  let sx = img.width / w;
  let sy = img.height / h;
  let ox = 0;
  let oy = 0;
  if (spec.resize) {
    const scale = spec.resize / Math.min(img.width, img.height);
    const rw = Math.round(img.width * scale);
    const rh = Math.round(img.height * scale);
    if (rw < w || rh < h) throw new PreprocessError(`resize ${spec.resize} gives ${rw}×${rh}, smaller than the ${w}×${h} crop`);
    sx = img.width / rw;
    sy = img.height / rh;
    ox = Math.round((rw - w) / 2);
    oy = Math.round((rh - h) / 2);
  }
  const same = !spec.resize && img.width === w && img.height === h;
  for (let c = 0; c < C; c++) {
    const mean = spec.mean[c] ?? spec.mean[0]!;
    const std = spec.std[c] ?? spec.std[0]!;
    const plane = offset + c * h * w;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let v: number;
        if (same) v = px(x, y, c);
        else {
          const fx = Math.min(Math.max((x + ox + 0.5) * sx - 0.5, 0), img.width - 1);
          const fy = Math.min(Math.max((y + oy + 0.5) * sy - 0.5, 0), img.height - 1);
          const x0 = Math.floor(fx);
          const y0 = Math.floor(fy);
          const x1 = Math.min(x0 + 1, img.width - 1);
          const y1 = Math.min(y0 + 1, img.height - 1);
          const ax = fx - x0;
          const ay = fy - y0;
          v = (px(x0, y0, c) * (1 - ax) + px(x1, y0, c) * ax) * (1 - ay) + (px(x0, y1, c) * (1 - ax) + px(x1, y1, c) * ax) * ay;
        }
        out[plane + y * w + x] = (v - mean) / std;
      }
    }
  }
}

/** A starting preprocessing for a model, from its input shape; the user can edit it. */
export function proposePreprocess(inputShape: readonly (number | string)[]): PreprocessSpec {
  const [, c, h, w] = inputShape;
  const size: [number, number] = [typeof h === 'number' ? h : 28, typeof w === 'number' ? w : 28];
  if (c === 3) return size[0] === 224 && size[1] === 224 ? IMAGENET : { ...IMAGENET, size, resize: Math.round((Math.min(...size) * 256) / 224) };
  if (size[0] === 28 && size[1] === 28) return FASHION_MNIST;
  return { size, channels: 1, mean: [0.5], std: [0.5] };
}

/**
 * What the model's input shape leaves open and the user must give: the channels, the size, or both
 * when the file records no shape. A shape of another rank is not an image input (`batchSizeFor` says so).
 */
export function openInputDims(shape: readonly (number | string)[]): { readonly channels: boolean; readonly size: boolean } {
  if (shape.length === 0) return { channels: true, size: true };
  if (shape.length !== 4) return { channels: false, size: false };
  return { channels: typeof shape[1] !== 'number', size: typeof shape[2] !== 'number' || typeof shape[3] !== 'number' };
}
