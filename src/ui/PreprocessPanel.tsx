import { useEffect, useRef, useState } from 'react';
import { useStudio } from '../state/store';
import { studioWorker } from '../state/studio-worker';
import { FASHION_MNIST, IMAGENET, checkPreprocess, proposePreprocess, type PreprocessSpec } from '../core/data/preprocess';
import { classLabel } from '../core/data/class-names';
import type { PreprocessPreview, PreviewedImage } from '../common/preprocess-protocol';

const PRESETS = { imagenet: { label: 'ImageNet (resize 256, centre crop 224)', spec: IMAGENET }, fmnist: { label: 'Fashion-MNIST (28×28 grey)', spec: FASHION_MNIST } } as const;
type Preset = keyof typeof PRESETS | 'custom';

/** How many calibration images the strip shows. */
const PREVIEW_COUNT = 6;

/** The fields as typed: text, so that a half-typed "0.4," is kept while it is not yet a number list. */
interface Draft {
  height: string;
  width: string;
  resize: string;
  channels: '1' | '3';
  mean: string;
  std: string;
}

const toDraft = (s: PreprocessSpec): Draft => ({ height: String(s.size[0]), width: String(s.size[1]), resize: s.resize ? String(s.resize) : '', channels: String(s.channels) as '1' | '3', mean: s.mean.join(', '), std: s.std.join(', ') });

function parseDraft(d: Draft): PreprocessSpec {
  const numbers = (text: string, name: string): number[] => {
    const parts = text.split(',').map((p) => p.trim());
    const values = parts.map(Number);
    if (parts.some((p) => p === '') || values.some((v) => !Number.isFinite(v))) throw new Error(`${name}: write one number, or one per channel, separated by commas`);
    return values;
  };
  const spec: PreprocessSpec = {
    size: [Number(d.height), Number(d.width)],
    channels: d.channels === '1' ? 1 : 3,
    mean: numbers(d.mean, 'mean'),
    std: numbers(d.std, 'std'),
    ...(d.resize.trim() ? { resize: Number(d.resize) } : {}),
  };
  checkPreprocess(spec);
  return spec;
}

/** Equal field by field, whatever order the object's keys were written in. */
const canon = (s: PreprocessSpec | null): string => (s ? JSON.stringify([s.size, s.resize ?? null, s.channels, s.mean, s.std]) : 'null');
const same = (a: PreprocessSpec | null, b: PreprocessSpec | null): boolean => canon(a) === canon(b);

function presetOf(spec: PreprocessSpec | null): Preset {
  for (const [key, p] of Object.entries(PRESETS)) if (same(spec, p.spec)) return key as Preset;
  return 'custom';
}

/** One preprocessed image, drawn at its model size and scaled up by CSS. */
function PreviewTile({ image, label }: { image: PreviewedImage; label: string | null }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const ctx = ref.current?.getContext('2d');
    if (ctx) ctx.putImageData(new ImageData(new Uint8ClampedArray(image.rgba), image.width, image.height), 0, 0);
  }, [image]);
  const name = image.path.split('/').pop();
  return (
    <figure className="preview-tile">
      <canvas ref={ref} width={image.width} height={image.height} role="img" aria-label={`${name} as the model sees it${label ? `: ${label}` : ''}`} />
      <figcaption title={image.path}>{label ?? name}</figcaption>
    </figure>
  );
}

/**
 * The preprocessing: a preset proposed from the model's input shape, every field editable, and a
 * strip of calibration images as the model gets them, labelled with the float model's top class.
 * A valid edit becomes the project's preprocessing at once (what a run uses).
 */
export function PreprocessPanel() {
  const project = useStudio((s) => s.project);
  const setPreprocess = useStudio((s) => s.setPreprocess);
  const running = useStudio((s) => s.run.kind === 'running');
  const applied = project?.preprocess ?? null;
  const [draft, setDraft] = useState<Draft | null>(applied && toDraft(applied));
  const [error, setError] = useState<string | null>(null);
  const [preview, setPreview] = useState<PreprocessPreview | null>(null);
  const [previewError, setPreviewError] = useState<string | null>(null);
  /** The spec this panel applied last: its echo from the worker must not reset what is being typed. */
  const mine = useRef<PreprocessSpec | null>(null);

  useEffect(() => {
    if (applied && !same(applied, mine.current)) {
      setDraft(toDraft(applied));
      setError(null);
    }
  }, [applied]);

  const key = JSON.stringify([project?.modelName, project?.calibImages, applied]);
  useEffect(() => {
    if (!applied || !project?.calibImages) return void setPreview(null);
    let live = true;
    studioWorker()
      .previewPreprocess(applied, PREVIEW_COUNT)
      .then((p) => live && (setPreview(p), setPreviewError(null)))
      .catch((e: unknown) => live && setPreviewError((e instanceof Error ? e.message : String(e)).replace(/^\w*Error: /, '')));
    return () => void (live = false);
    // the key covers the model, the images and the spec by value
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  if (!project?.summary || !draft) return null;
  const inputShape = project.summary.inputs[0]?.shape ?? [];
  const proposed = presetOf(proposePreprocess(inputShape));

  const edit = (next: Draft) => {
    setDraft(next);
    let spec: PreprocessSpec;
    try {
      spec = parseDraft(next);
    } catch (e) {
      return setError((e as Error).message);
    }
    setError(null);
    mine.current = spec;
    setPreprocess(spec).catch((e: unknown) => setError((e instanceof Error ? e.message : String(e)).replace(/^\w*Error: /, '')));
  };
  const field = (name: keyof Draft, label: string, extra: { inputMode?: 'numeric' | 'decimal'; placeholder?: string } = {}) => (
    <label>
      {label}
      <input type="text" value={draft[name]} disabled={running} onChange={(e) => edit({ ...draft, [name]: e.target.value })} {...extra} />
    </label>
  );

  return (
    <section className="card" aria-labelledby="preprocess-title">
      <h2 id="preprocess-title">Preprocessing</h2>
      <div className="form">
        <label>
          Preset
          <select
            value={presetOf(parseOrNull(draft))}
            disabled={running}
            onChange={(e) => e.target.value !== 'custom' && edit(toDraft(PRESETS[e.target.value as keyof typeof PRESETS].spec))}
          >
            {(Object.keys(PRESETS) as (keyof typeof PRESETS)[]).map((k) => (
              <option key={k} value={k}>
                {PRESETS[k].label}
                {k === proposed ? ' — proposed for this model' : ''}
              </option>
            ))}
            <option value="custom">Custom</option>
          </select>
        </label>
        <div className="form-row">
          {field('height', 'Height', { inputMode: 'numeric' })}
          {field('width', 'Width', { inputMode: 'numeric' })}
          {field('resize', 'Shorter side, then crop', { inputMode: 'numeric', placeholder: 'none' })}
          <label>
            Channels
            <select value={draft.channels} disabled={running} onChange={(e) => edit({ ...draft, channels: e.target.value as '1' | '3' })}>
              <option value="1">1 (grey)</option>
              <option value="3">3 (RGB)</option>
            </select>
          </label>
        </div>
        {field('mean', 'Mean (per channel, pixels in [0, 1])', { inputMode: 'decimal' })}
        {field('std', 'Std (per channel)', { inputMode: 'decimal' })}
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <p className="hint">Pixels are scaled to [0, 1], resized (with a shorter side, that side is resized to it and the centre cropped), then (x − mean) / std per channel. The model's input is [{inputShape.join(' × ')}].</p>
      {previewError && (
        <p role="alert" className="error">
          {previewError}
        </p>
      )}
      {/* said once: the project's own list (the Model card) already carries what would stop a run */}
      {preview?.problem && !project?.warnings.includes(preview.problem) && (
        <p className="warning" role="alert">
          {preview.problem}
        </p>
      )}
      {preview && preview.images.length > 0 && (
        <>
          <h3>What the model sees{preview.outputs ? ', and what the float model predicts' : ''}</h3>
          <div className="preview-strip" data-testid="preprocess-preview">
            {preview.images.map((im) => {
              const top = im.top[0];
              return <PreviewTile key={im.path} image={im} label={top && preview.outputs ? `${classLabel(top.index, preview.outputs, project.classes)} (${(top.probability * 100).toFixed(0)}%)` : null} />;
            })}
          </div>
        </>
      )}
    </section>
  );
}

function parseOrNull(d: Draft): PreprocessSpec | null {
  try {
    return parseDraft(d);
  } catch {
    return null;
  }
}
