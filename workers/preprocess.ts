/**
 * The studio worker's preprocessing preview: the first calibration images as the chosen
 * preprocessing makes them, and what the float model predicts for each, so a wrong preset (a
 * crop, a mean, a channel order) shows before a run rather than as a poor accuracy after one.
 */
import { batchSizeFor, loadModel } from '../src/core/pipeline';
import { encodeModel } from '../src/core/onnx/codec';
import { decodeImage } from '../src/core/data/batches';
import { checkPreprocess, type PreprocessSpec } from '../src/core/data/preprocess';
import { previewImage, topClasses } from '../src/core/data/preview';
import { ModelSession } from '../src/core/eval/runtime';
import type { ImageFile } from '../src/core/data/image-set';
import type { ModelSummary } from '../src/core/graph/summary';
import type { PreprocessPreview, PreviewedImage } from '../src/common/preprocess-protocol';

/** What a preview needs of the worker's project. */
export interface PreviewProject {
  readonly model: Uint8Array | null;
  readonly external: ReadonlyMap<string, Uint8Array>;
  readonly summary: ModelSummary | null;
  readonly calib: readonly ImageFile[];
}

/** One float session per model, kept across previews: editing a field must not rebuild it. */
let cached: { model: Uint8Array; session: Promise<ModelSession> } | null = null;

function sessionFor(project: PreviewProject): Promise<ModelSession> {
  if (cached?.model === project.model) return cached.session;
  if (cached) void cached.session.then((s) => s.release()).catch(() => undefined);
  const model = project.model!;
  const session = (async () => {
    const bytes = project.external.size ? encodeModel((await loadModel(model, project.external)).proto) : model;
    return ModelSession.create(bytes, 'all');
  })();
  cached = { model, session };
  return session;
}

const TOP = 3;

export async function previewPreprocess(project: PreviewProject, spec: PreprocessSpec, count: number): Promise<PreprocessPreview> {
  if (!project.model || !project.summary) throw new Error('drop a model first');
  checkPreprocess(spec);
  // the run's order: calibration images sorted by path
  const files = [...project.calib].sort((a, b) => a.path.localeCompare(b.path)).slice(0, count);
  const shown = await Promise.all(files.map(async (f) => previewImage(await decodeImage(f), spec, f.path)));
  let batch: number;
  try {
    batch = batchSizeFor(project.summary, spec);
  } catch (e) {
    return { images: shown.map((s) => ({ ...s.preview, top: [] })), outputs: null, problem: (e as Error).message };
  }
  // one image per call, padded with zeros where the model's batch dimension is fixed
  const fixed = typeof project.summary.inputs[0]!.shape[0] === 'number' ? batch : 1;
  const session = await sessionFor(project);
  const output = session.outputNames[0]!;
  let outputs = 0;
  const images: PreviewedImage[] = [];
  for (const { input, preview } of shown) {
    const data = new Float32Array(input.length * fixed);
    data.set(input);
    const logits = (await session.run(data, [fixed, spec.channels, spec.size[0], spec.size[1]], [output])).get(output)!;
    outputs = logits.data.length / fixed;
    images.push({ ...preview, top: topClasses(logits.data.subarray(0, outputs), TOP) });
  }
  return { images, outputs, problem: null };
}
