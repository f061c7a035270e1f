import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { DatasetError, isImagePath, type ImageFile } from '../core/data/image-set';

/** Every image under `dir`, with paths relative to it (forward slashes), in sorted order. */
export async function readImageFolder(dir: string): Promise<ImageFile[]> {
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
