import { STAGE_LABELS } from '../core/events';
import { useStudio } from '../state/store';
import { LossChart } from './LossChart';

export function RunPanel({ dark }: { dark: boolean }) {
  const { run, startRun, cancelRun, project } = useStudio();
  const hasLosses = useStudio((s) => s.losses !== null);
  const ready = !!project?.summary && project.calibImages > 0;
  const running = run.kind === 'running';
  return (
    <section className="card" aria-labelledby="run-title">
      <h2 id="run-title">Run</h2>
      <div className="row">
        <button type="button" className="primary" onClick={() => void startRun()} disabled={!ready || running}>
          Run
        </button>
        {running && (
          <button type="button" onClick={cancelRun}>
            Cancel
          </button>
        )}
      </div>
      {!ready && <p className="hint">{project?.summary ? 'Add calibration images to run.' : 'Open the demo or drop a model to start.'}</p>}
      {running && (
        <div className="progress-block" role="status" aria-live="polite">
          <span>{STAGE_LABELS[run.stage]}</span>
          <progress max={run.total} value={run.done} aria-label={STAGE_LABELS[run.stage]} />
        </div>
      )}
      {running && run.stage === 'quantize' && hasLosses && <LossChart dark={dark} />}
      {run.kind === 'cancelled' && <p role="status">Cancelled.</p>}
      {run.kind === 'failed' && (
        <p role="alert" className="error">
          {run.message}
        </p>
      )}
    </section>
  );
}
