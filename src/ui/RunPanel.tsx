import { STAGE_LABELS } from '../core/events';
import { useStudio } from '../state/store';
import { LossChart } from './LossChart';

/** Time left in the current stage, from its progress so far; blank until there is enough to go on. */
function eta(run: { stage: string; done: number; total: number; stageStartedAt: number }): string {
  if (run.done < 1 || run.total <= 1 || run.done >= run.total) return '';
  const elapsed = (performance.now() - run.stageStartedAt) / 1000;
  const left = Math.round((elapsed / run.done) * (run.total - run.done));
  return `about ${left >= 60 ? `${Math.floor(left / 60)} min ${left % 60} s` : `${left} s`} left in this stage`;
}

export function RunPanel({ dark }: { dark: boolean }) {
  const { run, startRun, cancelRun, pauseRun, resumeRun, pause, project, loading } = useStudio();
  const hasLosses = useStudio((s) => s.losses !== null);
  const log = useStudio((s) => s.log);
  const ready = !!project?.summary && project.calibImages > 0 && loading === null;
  const running = run.kind === 'running';
  return (
    <section className="card" aria-labelledby="run-title">
      <h2 id="run-title">Run</h2>
      <div className="row">
        <button type="button" className="primary" onClick={() => void startRun()} disabled={!ready || running}>
          Run
        </button>
        {running && !pause && (
          <button type="button" onClick={() => void pauseRun()}>
            Pause
          </button>
        )}
        {running && pause && (
          <button type="button" onClick={resumeRun}>
            Resume
          </button>
        )}
        {running && (
          <button type="button" onClick={cancelRun}>
            Cancel
          </button>
        )}
      </div>
      {!ready && <p className="hint">{project?.summary ? 'Add calibration images to run.' : 'Open the demo or drop a model to start.'}</p>}
      {running && (
        <div className="progress-block" role="status" aria-live="polite">
          <span>
            {STAGE_LABELS[run.stage]}
            {pause && <b data-testid="paused">{pause.state === 'paused' ? ' — paused' : ' — pausing…'}</b>}
          </span>
          <progress max={run.total} value={run.done} aria-label={STAGE_LABELS[run.stage]} />
          <span data-testid="eta">{pause ? 'The run holds its state in memory; Resume continues where it stopped.' : eta(run)}</span>
        </div>
      )}
      {running && (run.stage === 'quantize' || run.stage === 'act-steps') && hasLosses && <LossChart dark={dark} />}
      {log.length > 0 && (
        <ol className="log" aria-label="Run log" data-testid="run-log">
          {log.slice(-8).map((l, i) => (
            <li key={i} className={l.kind}>
              {l.text}
            </li>
          ))}
        </ol>
      )}
      {run.kind === 'cancelled' && <p role="status">Cancelled.</p>}
      {run.kind === 'failed' && (
        <p role="alert" className="error">
          {run.message}
        </p>
      )}
      {run.kind === 'interrupted' && (
        <div role="alert" className="error" data-testid="run-interrupted">
          <p>
            The run stopped during “{STAGE_LABELS[run.stage]}”: {run.message}.{' '}
            {run.resumable ? 'Every block it finished is saved in this browser.' : 'This method saves no checkpoints, so a new run starts from the beginning.'}
          </p>
          <button type="button" className="primary" onClick={() => void startRun()} disabled={!ready}>
            {run.resumable ? 'Resume from the last finished block' : 'Run again'}
          </button>
        </div>
      )}
    </section>
  );
}
