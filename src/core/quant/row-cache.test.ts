import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CACHE_STORAGES, createRowCache, fromHalf, toHalf } from './row-cache';
import { fileSpillStore } from '../../cli/spill-store';
import { randn, rng } from '../random';

describe('float16 conversion', () => {
  it('round-trips every finite half exactly, and maps ±∞ and NaN', () => {
    for (let h = 0; h < 65536; h++) {
      const x = fromHalf(h);
      if (Number.isNaN(x)) expect(Number.isNaN(fromHalf(toHalf(x)))).toBe(true);
      else expect(toHalf(x), `half ${h.toString(16)}`).toBe(h);
    }
  });

  it('rounds to the nearest half, ties to even, overflow to ∞ and underflow to 0', () => {
    expect(fromHalf(toHalf(1 + 2 ** -11))).toBe(1); // a tie between 1 and 1 + 2⁻¹⁰: to the even one
    expect(fromHalf(toHalf(1 + 3 * 2 ** -11))).toBe(1 + 2 * 2 ** -10); // tie: to even (…10)
    expect(fromHalf(toHalf(1 + 1.1 * 2 ** -11))).toBe(1 + 2 ** -10);
    expect(fromHalf(toHalf(70000))).toBe(Infinity);
    expect(fromHalf(toHalf(-70000))).toBe(-Infinity);
    expect(fromHalf(toHalf(2 ** -26))).toBe(0);
    expect(fromHalf(toHalf(3 * 2 ** -26))).toBe(2 ** -24); // above half the smallest subnormal
    expect(fromHalf(toHalf(65504))).toBe(65504);
  });

  it('has relative error at most 2⁻¹¹ on normal values', () => {
    const r = rng(1);
    for (let i = 0; i < 20000; i++) {
      const x = (r() - 0.5) * 2 ** Math.floor(r() * 28 - 12);
      if (Math.abs(x) < 2 ** -14) continue;
      expect(Math.abs(fromHalf(toHalf(x)) - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11);
    }
  });
});

describe('row caches', () => {
  const rows = 37;
  const shape = [rows, 3, 5, 7];
  const per = 105;
  const data = randn(rows * per, rng(4), 2);

  for (const storage of CACHE_STORAGES) {
    it(`${storage}: batches written in pieces read back as rows and gathers, within the storage's precision`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'lowbit-spill-test-'));
      const cache = await createRowCache(shape, storage, fileSpillStore(dir));
      expect(cache.rowSize).toBe(per);
      for (let start = 0; start < rows; start += 8) cache.write(start, data.subarray(start * per, Math.min(rows, start + 8) * per));
      const tol = storage === 'float32' ? 0 : 2 ** -11;
      const close = (got: Float32Array, want: Float32Array) => got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * tol + 1e-7));
      close(cache.rows(0, rows), data);
      close(cache.rows(5, 9), data.subarray(5 * per, 9 * per));
      const idx = [36, 0, 17, 17, 3];
      const got = cache.gather(idx, new Float32Array(idx.length * per));
      idx.forEach((row, k) => close(got.subarray(k * per, (k + 1) * per), data.subarray(row * per, (row + 1) * per)));
      expect(() => cache.rows(30, 38)).toThrow(RangeError);
      cache.close();
      if (storage === 'spill') expect(readdirSync(readdirSync(dir).map((d) => join(dir, d))[0]!)).toEqual([]);
    });
  }

  it('float16 gathers cost half the memory and differ from float32 only by rounding', async () => {
    const a = await createRowCache(shape, 'float32');
    const b = await createRowCache(shape, 'float16');
    a.write(0, data);
    b.write(0, data);
    const x = a.rows(0, rows);
    const y = b.rows(0, rows);
    let err = 0;
    let energy = 0;
    for (let i = 0; i < x.length; i++) {
      err += (x[i]! - y[i]!) ** 2;
      energy += x[i]! ** 2;
    }
    // SQNR of the float16 copy: ~70 dB, far above any 8-bit quantization's ~40 dB
    expect(10 * Math.log10(energy / err)).toBeGreaterThan(60);
  });

  it('a spilled cache needs a spill store', async () => {
    await expect(createRowCache(shape, 'spill')).rejects.toThrow(/SpillStore/);
  });
});
