import { decodePng, isPng, type DecodedImage } from './png';
import { preprocessInto, type PreprocessSpec } from './preprocess';
import { DatasetError, type ImageFile } from './image-set';
import { decodeNpySample, isNpy } from './npy';
import { decodeJpeg, isJpeg } from './jpeg';

export async function decodeImage(file: ImageFile): Promise<DecodedImage> {
  const b = file.bytes;
  if (isPng(b)) return decodePng(b);
  if (isNpy(b)) return decodeNpySample(b, file.path);
  if (isJpeg(b)) return decodeJpeg(b);
  // refused by name rather than as "not an image": the user can convert them
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) throw new DatasetError(`${file.path}: GIF images are not supported; convert them to PNG (the first frame of an animation)`);
  throw new DatasetError(`${file.path}: not a PNG or JPEG image`);
}

/**
 * What preprocessing did to an image beyond scaling and normalising: each is legitimate, but the
 * user must be told, since a model fed resized or colour-converted images can score differently.
 * ImageNet-style resize-and-crop is the preprocessing itself, so it is not a conversion.
 */
export function conversionsOf(img: DecodedImage, spec: PreprocessSpec): { kind: string; message: string }[] {
  const out: { kind: string; message: string }[] = [];
  if (img.animated) out.push({ kind: 'animated', message: 'is an animated PNG: only its first frame is used' });
  if (!spec.resize && (img.width !== spec.size[1] || img.height !== spec.size[0])) out.push({ kind: 'resize', message: `is ${img.width}×${img.height}: images are resized (bilinear) to the model's ${spec.size[1]}×${spec.size[0]}` });
  const colour = img.channels >= 3;
  if (colour && spec.channels === 1) out.push({ kind: 'to-grey', message: 'is in colour: images are converted to grey (ITU-R 601 luma) for the 1-channel model' });
  if (!colour && spec.channels === 3) out.push({ kind: 'to-rgb', message: 'is grey: images are copied into the 3 channels of the RGB model' });
  if (img.channels === 2 || img.channels === 4) out.push({ kind: 'alpha', message: 'has an alpha channel, which is ignored' });
  return out;
}

/** Preprocessed images, decoded batch by batch so that large sets never sit in memory whole. */
export class ImageBatches {
  readonly sampleSize: number;
  constructor(
    readonly files: readonly ImageFile[],
    readonly spec: PreprocessSpec,
    readonly batchSize: number,
    /** Told once per kind of conversion (resize, colour, alpha, animation), naming the first image it applied to. */
    private readonly onConversion?: (message: string) => void,
  ) {
    this.sampleSize = spec.channels * spec.size[0] * spec.size[1];
  }

  private readonly told = new Set<string>();

  get count(): number {
    return this.files.length;
  }

  get batches(): number {
    return Math.ceil(this.files.length / this.batchSize);
  }

  /** Batch `b` as NCHW float32 and its shape. */
  async batch(b: number): Promise<{ data: Float32Array; shape: [number, number, number, number]; start: number }> {
    const start = b * this.batchSize;
    const n = Math.min(this.batchSize, this.files.length - start);
    const data = new Float32Array(n * this.sampleSize);
    // decoding is mostly inflate-stream set-up: overlapping the images of a batch is ~3× faster
    const images = await Promise.all(
      this.files.slice(start, start + n).map((file) =>
        decodeImage(file).catch((e: unknown) => {
          throw new DatasetError(`${file.path}: ${(e as Error).message}`);
        }),
      ),
    );
    images.forEach((img, i) => {
      if (this.onConversion) {
        for (const c of conversionsOf(img, this.spec)) {
          if (this.told.has(c.kind)) continue;
          this.told.add(c.kind);
          this.onConversion(`${this.files[start + i]!.path} ${c.message}`);
        }
      }
      preprocessInto(img, this.spec, data, i * this.sampleSize);
    });
    return { data, shape: [n, this.spec.channels, this.spec.size[0], this.spec.size[1]], start };
  }
}
