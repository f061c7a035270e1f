import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Nothing in a model, plan or image file can run as code: the app has no place where text becomes
 * code or markup. React escapes what it renders; these are the ways around it, and none may appear
 * in the app's source (the page, the workers and the core). Tests are exempt: they only build inputs.
 */
const SINKS: readonly [string, RegExp][] = [
  ['eval', /(^|[^.\w])eval\s*\(/],
  ['new Function', /new\s+Function\s*\(/],
  ['string timers', /set(Timeout|Interval)\s*\(\s*['"`]/],
  ['innerHTML / outerHTML', /\.(inner|outer)HTML\s*=/],
  ['insertAdjacentHTML', /insertAdjacentHTML/],
  ['document.write', /document\.write/],
  ['dangerouslySetInnerHTML', /dangerouslySetInnerHTML/],
  ['createContextualFragment', /createContextualFragment/],
  ['DOMParser', /new\s+DOMParser/],
  ['javascript: URLs', /['"`]javascript:/i],
];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === '__fixtures__' ? [] : sources(p);
    return /\.(ts|tsx)$/.test(e.name) && !/\.test\.ts$/.test(e.name) ? [p] : [];
  });
}

describe('no code from files', () => {
  const files = [...sources('src'), ...sources('workers')];

  it('scans the whole app', () => {
    expect(files).toContain(join('src', 'ui', 'App.tsx'));
    expect(files).toContain(join('workers', 'studio.worker.ts'));
    expect(files.length).toBeGreaterThan(50);
  });

  it('has no eval, Function constructor, HTML injection or javascript: URL anywhere in the app', () => {
    const found = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((line, i) => SINKS.filter(([, re]) => re.test(line)).map(([name]) => `${f}:${i + 1}: ${name}: ${line.trim()}`)),
    );
    expect(found).toEqual([]);
  });
});
