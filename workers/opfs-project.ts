import type { ImageFile } from '../src/core/data/image-set';
import type { PreprocessSpec } from '../src/core/data/preprocess';

/**
 * The open project, kept in the origin-private file system so that a reload restores it: the
 * bundled demo by reference, a user's project with its bytes (model, external data, images).
 */
export type SavedProject =
  | { readonly kind: 'demo'; readonly baseUrl: string; /** The user's edit of the demo's preprocessing. */ readonly preprocess?: PreprocessSpec | null }
  | {
      readonly kind: 'files';
      readonly modelName: string | null;
      readonly model: Uint8Array | null;
      readonly external: ReadonlyMap<string, Uint8Array>;
      readonly calib: readonly ImageFile[];
      readonly val: readonly ImageFile[];
      readonly preprocess: PreprocessSpec | null;
      readonly classNames: readonly string[] | null;
    };

interface Meta {
  kind: 'demo' | 'files';
  baseUrl?: string;
  modelName?: string | null;
  external?: string[];
  calib?: string[];
  val?: string[];
  preprocess?: PreprocessSpec | null;
  classNames?: string[] | null;
}

/** The project's folder; whatever else belongs to the project (a search) lives in it, so replacing the project drops it. */
export const DIR = 'project';

export async function write(dir: FileSystemDirectoryHandle, name: string, bytes: Uint8Array | string): Promise<void> {
  const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await w.write(typeof bytes === 'string' ? bytes : (bytes as Uint8Array<ArrayBuffer>));
  await w.close();
}

export async function read(dir: FileSystemDirectoryHandle, name: string): Promise<Uint8Array> {
  return new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer());
}

/** Replaces the saved project. Image files are stored under numbered names, their paths in the metadata. */
export async function saveProject(p: SavedProject): Promise<void> {
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(DIR, { recursive: true }).catch(() => undefined);
  const dir = await root.getDirectoryHandle(DIR, { create: true });
  if (p.kind === 'demo') return write(dir, 'meta.json', JSON.stringify({ kind: 'demo', baseUrl: p.baseUrl } satisfies Meta));
  if (p.model) await write(dir, 'model', p.model);
  const ext = [...p.external.keys()];
  for (const [i, name] of ext.entries()) await write(dir, `external-${i}`, p.external.get(name)!);
  for (const [i, f] of p.calib.entries()) await write(dir, `calib-${i}`, f.bytes);
  for (const [i, f] of p.val.entries()) await write(dir, `val-${i}`, f.bytes);
  const meta: Meta = { kind: 'files', modelName: p.modelName, external: ext, calib: p.calib.map((f) => f.path), val: p.val.map((f) => f.path), preprocess: p.preprocess, classNames: p.classNames ? [...p.classNames] : null };
  // the metadata goes last: a project half-written when the tab died is not restored
  await write(dir, 'meta.json', JSON.stringify(meta));
}

export async function loadProject(): Promise<SavedProject | null> {
  let dir: FileSystemDirectoryHandle;
  let meta: Meta;
  try {
    dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(DIR);
    meta = JSON.parse(new TextDecoder().decode(await read(dir, 'meta.json'))) as Meta;
  } catch {
    return null;
  }
  if (meta.kind === 'demo') return { kind: 'demo', baseUrl: meta.baseUrl ?? 'demo/', preprocess: meta.preprocess ?? null };
  const model = meta.modelName ? await read(dir, 'model') : null;
  const external = new Map<string, Uint8Array>();
  for (const [i, name] of (meta.external ?? []).entries()) external.set(name, await read(dir, `external-${i}`));
  const images = async (paths: string[] | undefined, prefix: string): Promise<ImageFile[]> => Promise.all((paths ?? []).map(async (path, i) => ({ path, bytes: await read(dir, `${prefix}-${i}`) })));
  return { kind: 'files', modelName: meta.modelName ?? null, model, external, calib: await images(meta.calib, 'calib'), val: await images(meta.val, 'val'), preprocess: meta.preprocess ?? null, classNames: meta.classNames ?? null };
}

/** Changes the saved project's preprocessing alone: an edit of a field must not rewrite every image. */
export async function savePreprocess(spec: PreprocessSpec): Promise<void> {
  const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(DIR);
  const meta = JSON.parse(new TextDecoder().decode(await read(dir, 'meta.json'))) as Meta;
  await write(dir, 'meta.json', JSON.stringify({ ...meta, preprocess: spec } satisfies Meta));
}
