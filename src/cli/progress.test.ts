import { describe, expect, it, vi } from 'vitest';
import { terminalReporter } from './progress';

/** A stand-in for process.stderr: what was written, and whether it claims to be a terminal. */
function stream(isTTY: boolean): { out: string[]; s: NodeJS.WriteStream } {
  const out: string[] = [];
  return { out, s: { isTTY, write: (chunk: string) => out.push(chunk) > 0 } as unknown as NodeJS.WriteStream };
}

describe('the CLI progress reporter', () => {
  it('on a terminal draws a bar redrawn in place, with done/total and an ETA from the elapsed time', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    try {
      const { out, s } = stream(true);
      const report = terminalReporter(s, false);
      report({ type: 'stage', stage: 'quantize' });
      vi.advanceTimersByTime(10_000);
      report({ type: 'progress', stage: 'quantize', done: 25, total: 100 });
      const line = out.at(-1)!;
      expect(line.startsWith('\r')).toBe(true);
      // a quarter done after 10 s: 30 s to go
      expect(line).toMatch(/\[#{8}\s{22}\] 25\/100 ETA 30s$/);
      vi.advanceTimersByTime(10_000);
      report({ type: 'progress', stage: 'quantize', done: 50, total: 100 });
      expect(out.at(-1)).toMatch(/\] 50\/100 ETA 20s$/);
      // a message interrupts the bar on a line of its own
      report({ type: 'warning', message: 'careful' });
      expect(out.at(-1)).toBe('\nwarning: careful\n');
    } finally {
      vi.useRealTimers();
    }
  });

  it('off a terminal (CI logs) writes one plain line per stage and no bar', () => {
    const { out, s } = stream(false);
    const report = terminalReporter(s, false);
    report({ type: 'stage', stage: 'calibrate' });
    report({ type: 'progress', stage: 'calibrate', done: 1, total: 4 });
    report({ type: 'info', message: 'note' });
    expect(out.join('')).not.toMatch(/\r|#|ETA/);
    expect(out).toHaveLength(2);
    expect(out[1]).toBe('note\n');
  });

  it('with --json writes nothing, so stdout and stderr stay machine-readable', () => {
    const { out, s } = stream(true);
    const report = terminalReporter(s, true);
    report({ type: 'stage', stage: 'quantize' });
    report({ type: 'progress', stage: 'quantize', done: 1, total: 2 });
    expect(out).toHaveLength(0);
  });
});
