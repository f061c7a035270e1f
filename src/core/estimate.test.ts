import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { decodeModel } from './onnx/codec';
import { summarizeModel } from './graph/summary';
import { calibImagesWithin, estimateRun } from './estimate';
import type { QuantPlan } from './plan';

const summary = summarizeModel(decodeModel(new Uint8Array(readFileSync('public/demo/model.onnx'))));
const plan = (p: Partial<QuantPlan>): QuantPlan => ({ method: 'brecq', wbits: 4, abits: 8, headStem8bit: true, ...p });

describe('run estimate', () => {
  it('grows with iterations and calibration images, and ranks the methods by their caches', () => {
    const a = estimateRun(summary, plan({ iters: 1000 }), 256, 1000);
    const b = estimateRun(summary, plan({ iters: 2000 }), 256, 1000);
    expect(a.fromShapes).toBe(true);
    expect(b.seconds).toBeGreaterThan(a.seconds);
    expect(estimateRun(summary, plan({}), 1024, 1000).cacheBytes).toBeCloseTo(4 * a.cacheBytes, 0);
    expect(estimateRun(summary, plan({ method: 'rtn' }), 256, 1000).cacheBytes).toBe(0);
    expect(estimateRun(summary, plan({ method: 'qdrop' }), 256, 1000).cacheBytes).toBeGreaterThan(a.cacheBytes);
    // the demo's largest block output is 16×28×28 floats: input and target for 256 images
    expect(a.cacheBytes).toBe(2 * 16 * 28 * 28 * 4 * 256);
  });

  it('fits the calibration set to a memory budget', () => {
    const e = estimateRun(summary, plan({}), 256, 0);
    expect(calibImagesWithin(summary, plan({}), 256, 0, e.cacheBytes + e.workBytes)).toBe(256);
    const half = calibImagesWithin(summary, plan({}), 256, 0, e.workBytes + e.cacheBytes / 2);
    expect(half).toBe(128);
    expect(calibImagesWithin(summary, plan({ method: 'rtn' }), 256, 0, 1)).toBe(256);
  });
});
