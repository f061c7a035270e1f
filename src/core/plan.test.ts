import { describe, expect, it } from 'vitest';
import { actScaleFor, parsePlan, scaleSearchFor, weightGranularity } from './plan';

describe('plan: group size and step-size initialisation', () => {
  it('accepts groups of 32, 64 or 128 inputs; null or absent means per output channel', () => {
    expect(parsePlan({ method: 'rtn', wbits: 3, abits: 8, groupSize: 64 }).groupSize).toBe(64);
    expect('groupSize' in parsePlan({ method: 'rtn', wbits: 3, abits: 8, groupSize: null })).toBe(false);
    expect(weightGranularity(undefined, 0)).toEqual({ kind: 'channel', axis: 0 });
    expect(weightGranularity(32, 1)).toEqual({ kind: 'group', axis: 1, size: 32 });
    for (const bad of [16, 48, '32', 0]) expect(() => parsePlan({ method: 'rtn', wbits: 3, abits: 8, groupSize: bad })).toThrow(/groupSize must be 32, 64, 128 or null/);
  });

  it('weight and activation inits default to each method’s reference, and are checked', () => {
    const plan = (method: string, extra = {}) => parsePlan({ method, wbits: 4, abits: 8, ...extra });
    expect(['rtn', 'adaround', 'brecq', 'qdrop', 'nwq'].map((m) => [scaleSearchFor(plan(m)), actScaleFor(plan(m))])).toEqual([
      ['minmax', 'minmax'],
      ['lp', 'minmax'],
      ['lp', 'lp'],
      ['mse', 'mse'],
      ['lp', 'lp'],
    ]);
    expect(actScaleFor(plan('brecq', { actScale: 'percentile' }))).toBe('percentile');
    expect(scaleSearchFor(plan('qdrop', { scale: 'minmax' }))).toBe('minmax');
    expect(() => plan('rtn', { actScale: 'kl' })).toThrow(/actScale must be one of "minmax", "lp", "mse", "percentile", got "kl"/);
  });
});
