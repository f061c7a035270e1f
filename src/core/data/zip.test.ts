import { describe, expect, it } from 'vitest';
import { readZip, isZip } from './zip';
import { DatasetError, isImagePath, labelImages } from './image-set';
import { writeZip } from '../testing/zip-writer';

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) % 7 === 0 ? 0 : (i * seed) & 255);

describe('zip archives of images', () => {
  it('reads stored and deflated entries with their folders, which label the images', async () => {
    const a = bytes(3000, 3);
    const b = bytes(10, 5);
    const zip = await writeZip([
      { path: 'val/0_cat/a.png', bytes: a },
      { path: 'val/1_dog/b.png', bytes: b, deflate: false },
      { path: 'val/notes.txt', bytes: bytes(50, 7) },
    ]);
    expect(isZip(zip)).toBe(true);
    const files = await readZip(zip, 'val.zip', isImagePath);
    expect(files.map((f) => f.path)).toEqual(['val/0_cat/a.png', 'val/1_dog/b.png']);
    expect(Array.from(files[0]!.bytes)).toEqual(Array.from(a));
    expect(Array.from(files[1]!.bytes)).toEqual(Array.from(b));
    expect(labelImages(files.map((f) => f.path)).classes).toEqual(['0_cat', '1_dog']);
  });

  it('refuses encrypted entries, ZIP64, corrupt data and non-archives by name', async () => {
    const enc = await writeZip([{ path: 'a.png', bytes: bytes(100, 1), encrypted: true }]);
    await expect(readZip(enc, 'x.zip')).rejects.toThrow(new DatasetError('x.zip: a.png is encrypted; encrypted archives are not supported'));

    const zip = await writeZip([{ path: 'a.png', bytes: bytes(2000, 2) }]);
    const eocd = zip.length - 22;
    const zip64 = zip.slice();
    zip64.set([0xff, 0xff], eocd + 10);
    await expect(readZip(zip64, 'x.zip')).rejects.toThrow(/x\.zip: ZIP64 archives are not supported/);

    const flipped = zip.slice();
    flipped[30 + 'a.png'.length + 5]! ^= 0x10; // inside the deflated data
    await expect(readZip(flipped, 'x.zip')).rejects.toThrow(/x\.zip: a\.png: (CRC mismatch|corrupt compressed data)/);

    await expect(readZip(zip.subarray(0, zip.length - 5), 'x.zip')).rejects.toThrow(/no end of central directory/);
    await expect(readZip(new Uint8Array(10), 'x.zip')).rejects.toThrow(DatasetError);
  });
});
