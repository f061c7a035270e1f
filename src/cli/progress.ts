import { STAGE_LABELS, type PipelineEvent } from '../core/events';

/** A progress bar with ETA on a terminal; plain lines (one per stage) otherwise, e.g. in CI logs. */
export function terminalReporter(stream: NodeJS.WriteStream, quiet: boolean): (e: PipelineEvent) => void {
  const tty = stream.isTTY === true;
  let started = 0;
  let lastLine = '';
  return (e) => {
    if (quiet) return;
    if (e.type === 'stage') {
      if (tty && lastLine) stream.write('\n');
      lastLine = '';
      started = performance.now();
      if (!tty) stream.write(`${STAGE_LABELS[e.stage]}…\n`);
    } else if (e.type === 'progress' && tty) {
      const frac = e.total ? e.done / e.total : 1;
      const width = 30;
      const elapsed = (performance.now() - started) / 1000;
      const eta = frac > 0 ? (elapsed / frac) * (1 - frac) : 0;
      lastLine = `${STAGE_LABELS[e.stage].padEnd(38)} [${'#'.repeat(Math.round(frac * width)).padEnd(width)}] ${e.done}/${e.total} ETA ${eta.toFixed(0)}s`;
      stream.write(`\r${lastLine}`);
    } else if (e.type === 'warning') {
      stream.write(`${tty && lastLine ? '\n' : ''}warning: ${e.message}\n`);
    } else if (e.type === 'info') {
      stream.write(`${tty && lastLine ? '\n' : ''}${e.message}\n`);
    }
  };
}

export function finishReporter(stream: NodeJS.WriteStream): void {
  if (stream.isTTY) stream.write('\n');
}
