import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { DatasetError, isImagePath, type ImageFile } from '../core/data/image-set';
import { npySamples, parseNpy, type NpyArray } from '../core/data/npy';
import { readZip } from '../core/data/zip';

/** Every image under `dir` (or in a .zip archive, or every sample of a .npy array), with paths relative to it (forward slashes), in sorted order. */
export async function readImageFolder(dir: string, classNames?: readonly string[]): Promise<ImageFile[]> {
  if (/\.npy$/i.test(dir)) return readNpyImages(dir, classNames);
  if (/\.zip$/i.test(dir)) return readZipImages(dir);
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new DatasetError(`${dir}: no such folder`);
  }
  if (!info.isDirectory()) throw new DatasetError(`${dir}: not a folder (give a folder of PNG images)`);
  const paths: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (isImagePath(e.name)) paths.push(relative(dir, p).split(sep).join('/'));
    }
  };
  await walk(dir);
  if (paths.length === 0) throw new DatasetError(`${dir}: no PNG or JPEG images found`);
  paths.sort();
  return Promise.all(paths.map(async (path) => ({ path, bytes: new Uint8Array(await readFile(join(dir, path))) })));
}

/**
 * An N×C×H×W float .npy array of pixels in [0, 1], with labels (integers, length N) in a sibling
 * `NAME.labels.npy` or `NAME_labels.npy` when there are any: calibration without, validation with.
 */
async function readNpyImages(path: string, classNames?: readonly string[]): Promise<ImageFile[]> {
  const bytes = await readFile(path).catch(() => {
    throw new DatasetError(`${path}: no such file`);
  });
  const array = parseNpy(new Uint8Array(bytes), path);
  const stem = path.replace(/\.npy$/i, '');
  let labels: NpyArray | undefined;
  for (const candidate of [`${stem}.labels.npy`, `${stem}_labels.npy`]) {
    const found = await readFile(candidate).catch(() => null);
    if (found) {
      labels = parseNpy(new Uint8Array(found), candidate);
      break;
    }
  }
  return npySamples(array, basename(path), labels, classNames);
}

/** The images of a zip archive, with their paths inside it: class folders in the archive are labels, as on disk. */
async function readZipImages(path: string): Promise<ImageFile[]> {
  const bytes = await readFile(path).catch(() => {
    throw new DatasetError(`${path}: no such file`);
  });
  const files = await readZip(new Uint8Array(bytes), path, isImagePath);
  if (files.length === 0) throw new DatasetError(`${path}: no PNG or JPEG images found in the archive`);
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
