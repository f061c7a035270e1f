import { describe, expect, it } from 'vitest';
import { DatasetError, labelImages } from './image-set';
import { preprocessInto } from './preprocess';

describe('labelImages', () => {
  it('labels class sub-folders in sorted name order, whatever folder was dropped', () => {
    const set = labelImages(['val/1_b/x.png', 'val/0_a/y.png', 'val/0_a/a.png', 'val/.DS_Store', 'val/1_b/notes.txt']);
    expect(set.classes).toEqual(['0_a', '1_b']);
    expect(set.images).toEqual([
      { path: 'val/0_a/a.png', label: 0 },
      { path: 'val/0_a/y.png', label: 0 },
      { path: 'val/1_b/x.png', label: 1 },
    ]);
  });

  it('treats a flat folder as unlabelled calibration data', () => {
    expect(labelImages(['calib/b.png', 'calib/a.PNG']).classes).toBeNull();
  });

  it('follows a label list when folder names do not sort in model order', () => {
    const set = labelImages(['cat/1.png', 'dog/2.png'], ['dog', 'cat']);
    expect(set.images.map((i) => i.label)).toEqual([0, 1]);
  });

  it('rejects empty folders, mixed layouts and unknown classes with a reason', () => {
    expect(() => labelImages(['a.txt'])).toThrow(DatasetError);
    expect(() => labelImages(['d/x.png', 'd/c/y.png'])).toThrow(/mixes loose images/);
    expect(() => labelImages(['cat/1.png', 'cow/2.png'], ['dog', 'cat'])).toThrow(/cow/);
  });
});

describe('preprocessInto', () => {
  it('scales to [0, 1] then normalises with mean and std', () => {
    const img = { width: 2, height: 1, channels: 1 as const, bitDepth: 8 as const, data: Uint8Array.from([0, 255]) };
    const out = new Float32Array(2);
    preprocessInto(img, { size: [1, 2], channels: 1, mean: [0.5], std: [0.25] }, out, 0);
    expect(Array.from(out)).toEqual([-2, 2]);
  });

  it('converts RGB to grey with ITU-R 601 weights and grey to RGB by replication', () => {
    const rgb = { width: 1, height: 1, channels: 3 as const, bitDepth: 8 as const, data: Uint8Array.from([255, 0, 0]) };
    const grey = new Float32Array(1);
    preprocessInto(rgb, { size: [1, 1], channels: 1, mean: [0], std: [1] }, grey, 0);
    expect(grey[0]).toBeCloseTo(0.299, 6);
    const g = { width: 1, height: 1, channels: 1 as const, bitDepth: 16 as const, data: Uint16Array.from([65535]) };
    const three = new Float32Array(3);
    preprocessInto(g, { size: [1, 1], channels: 3, mean: [0, 0, 0], std: [1, 1, 1] }, three, 0);
    expect(Array.from(three)).toEqual([1, 1, 1]);
  });

  it('ImageNet style: scales the shorter side, then crops the centre', () => {
    // 8 wide, 4 high, each pixel holding its column index: scale 1, so the crop is columns 2..5
    const img = { width: 8, height: 4, channels: 1 as const, bitDepth: 8 as const, data: Uint8Array.from({ length: 32 }, (_, i) => i % 8) };
    const out = new Float32Array(16);
    preprocessInto(img, { size: [4, 4], resize: 4, channels: 1, mean: [0], std: [1 / 255] }, out, 0);
    expect(Array.from(out.subarray(0, 4)).map((v) => Math.round(v * 1000) / 1000)).toEqual([2, 3, 4, 5]);
    expect(() => preprocessInto(img, { size: [8, 8], resize: 4, channels: 1, mean: [0], std: [1] }, new Float32Array(64), 0)).toThrow(/smaller than/);
  });

  it('resizes bilinearly with half-pixel centres', () => {
    const img = { width: 2, height: 1, channels: 1 as const, bitDepth: 8 as const, data: Uint8Array.from([0, 255]) };
    const out = new Float32Array(4);
    preprocessInto(img, { size: [1, 4], channels: 1, mean: [0], std: [1] }, out, 0);
    expect(Array.from(out).map((v) => Number(v.toFixed(4)))).toEqual([0, 0.25, 0.75, 1]);
  });
});
