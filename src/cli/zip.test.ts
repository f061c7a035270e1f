import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImageFolder } from './files';
import { writeZip } from '../core/testing/zip-writer';

/** --val and --calib take a zip archive as they take a folder: same images, same labels, same numbers. */
const DEMO = 'public/demo';
const tmp = mkdtempSync(join(tmpdir(), 'lowbit-zip-'));

function lowbit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/lowbit.mjs', ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('lowbit on zip archives', () => {
  it('eval on a zip of the demo\'s validation images gives the folder\'s top-1', async () => {
    const files = await readImageFolder(`${DEMO}/val`);
    // inside a top folder, as zipping a folder makes it; every other entry stored
    writeFileSync(join(tmp, 'val.zip'), await writeZip(files.map((f, i) => ({ path: `val/${f.path}`, bytes: f.bytes, deflate: i % 2 === 0 }))));
    const [fromZip, fromFolder] = await Promise.all([
      lowbit('eval', `${DEMO}/model.onnx`, '--val', join(tmp, 'val.zip'), '--json'),
      lowbit('eval', `${DEMO}/model.onnx`, '--val', `${DEMO}/val`, '--json'),
    ]);
    expect(fromZip.stderr).not.toMatch(/internal error/);
    expect(fromZip.code).toBe(0);
    const a = JSON.parse(fromZip.stdout) as { top1: number; count: number };
    const b = JSON.parse(fromFolder.stdout) as { top1: number; count: number };
    expect(a.count).toBe(files.length);
    expect(a.top1).toBeGreaterThan(0.5);
    expect(a.top1).toBe(b.top1);
  }, 120_000);

  it('quantize takes calibration images from a flat zip; an encrypted one is refused with a reason', async () => {
    const calib = (await readImageFolder(`${DEMO}/calib`)).slice(0, 32);
    writeFileSync(join(tmp, 'calib.zip'), await writeZip(calib));
    const q = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', join(tmp, 'calib.zip'), '--wbits', '8', '-o', join(tmp, 'zip.onnx'));
    expect(q.stderr).not.toMatch(/internal error/);
    expect(q.code).toBe(0);
    writeFileSync(join(tmp, 'locked.zip'), await writeZip(calib.slice(0, 2).map((f) => ({ ...f, encrypted: true }))));
    const bad = await lowbit('quantize', `${DEMO}/model.onnx`, '--calib', join(tmp, 'locked.zip'), '-o', join(tmp, 'x.onnx'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/locked\.zip: .*\.png is encrypted; encrypted archives are not supported/);
  }, 120_000);
});
