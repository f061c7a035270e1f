import { useEffect, useMemo } from 'react';
import { useStudio } from '../state/store';
import { LayerChart } from './LayerChart';
import { WeightHistogramChart } from './WeightHistogramChart';
import type { Accuracy } from '../core/eval/accuracy';
import type { RunReport } from '../core/pipeline';
import { reportHtml } from './report-html';

const pct = (a: Accuracy | null): string => (a ? `${(a.top1 * 100).toFixed(2)}%` : 'n/a');

/** An object URL for `value` as JSON, revoked when the value changes or the panel goes. */
function useJsonUrl(value: unknown): string | null {
  return useObjectUrl(value, (v) => new Blob([JSON.stringify(v, null, 2)], { type: 'application/json' }));
}

/** An object URL for what `toBlob` makes of `value`, revoked when the value changes or the panel goes. */
function useObjectUrl<T>(value: T | null, toBlob: (value: T) => Blob): string | null {
  // toBlob is a pure function of value: the URL depends on the value alone
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const url = useMemo(() => (value ? URL.createObjectURL(toBlob(value)) : null), [value]);
  useEffect(() => () => void (url && URL.revokeObjectURL(url)), [url]);
  return url;
}

const htmlBlob = (report: RunReport): Blob => new Blob([reportHtml(report)], { type: 'text/html' });

export function ResultsPanel({ dark }: { dark: boolean }) {
  const run = useStudio((s) => s.run);
  const report = run.kind === 'done' ? run.report : null;
  const reportUrl = useJsonUrl(report);
  const htmlUrl = useObjectUrl(report, htmlBlob);
  const planUrl = useJsonUrl(report?.plan ?? null);
  if (run.kind !== 'done' || !report || !reportUrl || !planUrl || !htmlUrl) return null;
  const delta = report.fp && report.exported ? (report.exported.top1 - report.fp.top1) * 100 : null;
  return (
    <section className="card wide" aria-labelledby="results-title">
      <h2 id="results-title">Results</h2>
      <div className="metrics">
        {(
          [
            ['Float top-1', 'fp-top1', report.fp],
            ['Quantized top-1', 'quant-top1', report.quant],
            ['Exported top-1 (ONNX Runtime)', 'exported-top1', report.exported],
          ] as const
        ).map(([label, id, acc]) => (
          <div className="metric" key={id}>
            <span className="label">{label}</span>
            <span className="value" data-testid={id}>
              {pct(acc)}
            </span>
            {id === 'exported-top1' && delta !== null && <span className={delta < -1 ? 'delta bad' : 'delta'}>{`${delta >= 0 ? '+' : ''}${delta.toFixed(2)} pts vs float`}</span>}
          </div>
        ))}
      </div>
      {report.fidelity && (
        <p className="hint" data-testid="fidelity">
          {`No labels: fidelity to the float model on ${report.fidelity.exported.count} images. Exported model: top-1 agreement ${(report.fidelity.exported.agreement * 100).toFixed(2)}%, output cosine ${report.fidelity.exported.cosine.toFixed(4)}.`}
        </p>
      )}
      <h3>Weight SQNR per layer</h3>
      <LayerChart layers={report.layers} dark={dark} />
      <h3>Weights before and after</h3>
      <WeightHistogramChart layers={report.layers} dark={dark} />
      {report.blocks.length > 0 && (
        <>
          <h3>Block outputs after reconstruction</h3>
          <table className="blocks" data-testid="block-metrics">
            <thead>
              <tr>
                <th scope="col">Block</th>
                <th scope="col">Layers</th>
                <th scope="col">Output SQNR</th>
                <th scope="col">Cosine</th>
                <th scope="col">Time</th>
              </tr>
            </thead>
            <tbody>
              {report.blocks.map((b) => (
                <tr key={b.block}>
                  <td>{b.block}</td>
                  <td>{b.layers.length}</td>
                  <td>{Number.isFinite(b.sqnrDb) ? `${b.sqnrDb.toFixed(1)} dB` : '∞'}</td>
                  <td>{b.cosine.toFixed(4)}</td>
                  <td>{`${b.seconds.toFixed(1)} s`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <div className="row">
        <a className="button primary" href={run.exportUrl} download={run.exportName} data-testid="download-model">
          Download {run.exportName}
        </a>
        <a className="button" href={planUrl} download={run.exportName.replace(/\.onnx$/, '.plan.json')} data-testid="download-plan">
          Download plan (JSON)
        </a>
        <a className="button" href={reportUrl} download={run.exportName.replace(/\.onnx$/, '.report.json')}>
          Download report (JSON)
        </a>
        <a className="button" href={htmlUrl} download={run.exportName.replace(/\.onnx$/, '.report.html')} data-testid="download-report-html">
          Download printable report (HTML)
        </a>
      </div>
    </section>
  );
}
