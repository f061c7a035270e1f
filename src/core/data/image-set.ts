/**
 * An image folder as the user dropped it. Sub-folders are classes, in sorted name order (which must
 * follow the model's output order); a flat folder is unlabelled (calibration).
 */

export interface ImageFile {
  /** Path relative to the dropped folder, with forward slashes. */
  readonly path: string;
  readonly bytes: Uint8Array;
}

export interface ImageSet {
  readonly images: readonly { readonly path: string; readonly label: number | null }[];
  readonly classes: readonly string[] | null;
}

export class DatasetError extends Error {
  override name = 'DatasetError';
}

// GIF is listed so that a GIF in a folder is refused by name (decodeImage) rather than silently skipped
const IMAGE_EXT = /\.(png|jpe?g|gif|npy)$/i;

export function isImagePath(path: string): boolean {
  return IMAGE_EXT.test(path) && !path.split('/').some((p) => p.startsWith('.'));
}

/** Strips the folder the user dropped, so that `calib/a.png` and `a.png` mean the same. */
function commonRoot(paths: readonly string[]): string {
  const parts = paths.map((p) => p.split('/'));
  const first = parts[0] ?? [];
  let n = 0;
  while (n < first.length - 1 && parts.every((p) => p.length > n + 1 && p[n] === first[n])) n++;
  return first.slice(0, n).join('/');
}

/**
 * Labels images by their class folder. Paths deeper than one folder below the root, or a mix of
 * loose files and class folders, are rejected rather than guessed at.
 */
export function labelImages(paths: readonly string[], classNames?: readonly string[]): ImageSet {
  const images = paths.filter(isImagePath);
  if (images.length === 0) throw new DatasetError('no PNG or JPEG images were found in the folder');
  const root = commonRoot(images);
  const rel = images.map((p) => (root ? p.slice(root.length + 1) : p));
  const depth = new Set(rel.map((p) => p.split('/').length));
  if (depth.size > 1) throw new DatasetError('the folder mixes loose images and class sub-folders; use one or the other');
  if (depth.has(1)) return { images: images.map((path) => ({ path, label: null })).sort((a, b) => a.path.localeCompare(b.path)), classes: null };
  if (!depth.has(2)) throw new DatasetError('images must sit directly in the folder (calibration) or in one level of class sub-folders (validation)');
  const folders = [...new Set(rel.map((p) => p.split('/')[0]!))].sort();
  let classes: readonly string[] = folders;
  if (classNames) {
    const missing = folders.filter((f) => !classNames.includes(f));
    if (missing.length) throw new DatasetError(`class folders not in the label list: ${missing.slice(0, 5).join(', ')}`);
    classes = classNames;
  }
  const labelled = images.map((path, i) => ({ path, label: classes.indexOf(rel[i]!.split('/')[0]!) }));
  labelled.sort((a, b) => a.label - b.label || a.path.localeCompare(b.path));
  return { images: labelled, classes };
}
