import { useStudio } from '../state/store';
import { planBitsLabel } from '../state/mixed-precision';

const pct = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(2)}%`);

/** Every finished run, newest first, side by side: the comparison of methods × bits. */
export function RunsTable() {
  const { history, setPlan, clearHistory, run, project } = useStudio();
  if (history.length === 0) return null;
  const rows = [...history].reverse();
  return (
    <section className="card wide" aria-labelledby="runs-title">
      <h2 id="runs-title">Runs</h2>
      <table className="blocks runs" data-testid="runs">
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Method</th>
            <th scope="col">Bits</th>
            <th scope="col">Float</th>
            <th scope="col">Quantized</th>
            <th scope="col">Exported</th>
            <th scope="col">Time</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id} className={r.modelName === project?.modelName ? '' : 'other'}>
              <td>{r.modelName}</td>
              <td>
                {r.plan.method}
                {r.plan.iters ? ` (${r.plan.iters} it.)` : ''}
              </td>
              <td>{`${planBitsLabel(r.plan)}${r.plan.groupSize ? `, groups of ${r.plan.groupSize}` : ''}`}</td>
              <td>{pct(r.fp)}</td>
              <td>{pct(r.quant)}</td>
              <td>{pct(r.exported)}</td>
              <td>{`${r.seconds.toFixed(0)} s`}</td>
              <td>
                <button type="button" className="small" disabled={run.kind === 'running'} onClick={() => setPlan(r.plan)} aria-label={`Use the plan of run ${r.id}`}>
                  use plan
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" className="small" onClick={() => void clearHistory()}>
        Clear the history
      </button>
    </section>
  );
}
