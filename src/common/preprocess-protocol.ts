/** The studio worker's preprocessing calls: types shared by the page and the worker, plain data only. */
import type { PreprocessSpec } from '../core/data/preprocess';
import type { PreviewImage } from '../core/data/preview';
import type { ProjectInfo } from './protocol';

export interface PreviewedImage extends PreviewImage {
  /** The float model's most probable classes for this image, most probable first; empty without predictions. */
  readonly top: readonly { readonly index: number; readonly probability: number }[];
}

export interface PreprocessPreview {
  readonly images: readonly PreviewedImage[];
  /** The model's number of outputs (classes) when predictions were made. */
  readonly outputs: number | null;
  /** Why no predictions were made (the preprocessing does not fit the model's input, say); null when they were. */
  readonly problem: string | null;
}

export interface PreprocessWorkerApi {
  /** Makes `spec` the project's preprocessing (kept with the project); rejects a spec that cannot be applied. */
  setPreprocess(spec: PreprocessSpec): Promise<ProjectInfo>;
  /** The first `count` calibration images (in run order) as `spec` makes them, with the float model's top classes. */
  previewPreprocess(spec: PreprocessSpec, count: number): Promise<PreprocessPreview>;
}
