import { useEffect, useMemo, useRef, useState } from 'react';
import { useStudio } from '../state/store';
import { useSearch } from '../state/search-store';
import { bitsKey, measuredRuns, planBits, planBitsLabel, searchPoints, uniformCosts, type SearchPoint } from '../state/mixed-precision';
import type { Bits } from '../core/quant/quantizer';
import { METRIC_UNITS, type CostMetric } from '../core/search/cost';
import { formatCost } from '../core/search/run';
import { SEARCH_PHASE_LABELS } from '../core/search/events';
import { DEFAULT_CANDIDATE_BITS, DEFAULT_SENSITIVITY_ITERS, type SensitivityMode } from '../core/search/sensitivity';
import { SensitivityHeatmap } from './SensitivityHeatmap';
import { ParetoChart } from './ParetoChart';
import { LayerBitsChart } from './LayerBitsChart';

const METRIC_LABELS: Readonly<Record<CostMetric, string>> = { size: 'Model size (MB)', bitops: 'BitOPs (G per image)', latency: 'Latency (ms, measured here)' };
const CANDIDATES: readonly Bits[] = [2, 3, 4, 5, 6, 7, 8];
/** The uniform plans whose costs are shown beside the budget, for reference. */
const REFERENCE_BITS: readonly Bits[] = [2, 3, 4, 8];
/** The budget proposed before the user types one: the cost of uniform 3-bit weights, between the usual candidates. */
const PROPOSED_BITS: Bits = 3;

const pct = (x: number | null): string => (x === null ? '–' : `${(x * 100).toFixed(2)}%`);
/** A cost in the budget field's unit, with the precision the CLI prints. */
const inUnit = (metric: CostMetric, base: number): string => String(Number((base / METRIC_UNITS[metric].scale).toPrecision(4)));
/** A plan's cost as a budget: rounded up, so that the plan it came from fits within it. */
function budgetFor(metric: CostMetric, base: number): string {
  const x = base / METRIC_UNITS[metric].scale;
  const near = Number(x.toPrecision(4));
  if (near >= x || x <= 0) return String(near);
  const step = 10 ** (Math.floor(Math.log10(x)) - 3);
  return String(Number((near + step).toPrecision(4)));
}

/** What the search minimises, and under what: the one-click explanation (algorithms.md §3.5). */
function Explanation() {
  return (
    <details className="explain">
      <summary>What does the search optimise?</summary>
      <p>
        It picks a weight width for every layer, among the candidates, to minimise a <em>proxy</em> of the accuracy loss under a hardware budget (BRECQ’s mixed precision). The proxy adds up, over the residual blocks, the block’s output error
        on the calibration images, Σ(ŷ − y)² / Σy² against the float model: each layer’s own term (its block’s error when only that layer is lowered to that width, the rest at the widest candidate), plus, for two layers of the same block both at the
        narrowest width, the extra error of lowering them together. Layers of different blocks are taken as independent (BRECQ’s block-diagonal assumption), so the proxy of any configuration is a table sum.
      </p>
      <p>
        <strong>Cheap</strong> measures each entry with round-to-nearest weights, one pass per entry: seconds, but it overstates the error that reconstruction would fix, most at 2 bits. <strong>Full</strong> measures each entry after a short BRECQ
        reconstruction of the block, as the paper does: many times slower.
      </p>
      <p>
        The cost is a sum over layers: size counts the packed weights, one scale and zero point per channel, and the 32-bit bias; BitOPs count MACs × weight bits × activation bits; latency comes from a table of each layer timed alone at each width
        with ONNX Runtime on this device. A genetic algorithm (population 50, 100 generations, mutation 0.1) finds the best configuration within the budget; sweeping the budget gives the Pareto front. The proxy ranks configurations; only a Run
        measures accuracy.
      </p>
    </details>
  );
}

export function MixedPrecisionPanel({ dark }: { dark: boolean }) {
  const project = useStudio((s) => s.project);
  const plan = useStudio((s) => s.plan);
  const setPlan = useStudio((s) => s.setPlan);
  const runKind = useStudio((s) => s.run.kind);
  const history = useStudio((s) => s.history);
  const { layers, saved, status, refresh, startSearch, cancelSearch, loadBits } = useSearch();
  useEffect(() => void refresh(), [project, refresh]);

  const [metric, setMetric] = useState<CostMetric>('size');
  /** A latency table from the target device, as its JSON file held (checked against the layers by the search). */
  const [imported, setImported] = useState<{ name: string; table: unknown } | null>(null);
  const [importError, setImportError] = useState<string | null>(null);
  const importTable = async (file: File) => {
    try {
      setImported({ name: file.name, table: JSON.parse(await file.text()) as unknown });
      setImportError(null);
    } catch {
      setImported(null);
      setImportError(`${file.name} is not JSON: a latency table is {"layers": {layer: {bits: ms}}}`);
    }
  };
  const [value, setValue] = useState('');
  const [bits, setBits] = useState<readonly Bits[]>(DEFAULT_CANDIDATE_BITS);
  const [mode, setMode] = useState<SensitivityMode>('cheap');
  const [iters, setIters] = useState(DEFAULT_SENSITIVITY_ITERS);

  // a latency table of the last search, if it timed the layers with the plan's activation bits
  const latency = saved?.report.latency && saved.report.latency.abits === plan.abits ? saved.report.latency : null;
  const references = useMemo(() => (layers ? uniformCosts(metric, layers, plan.abits, plan.headStem8bit, REFERENCE_BITS, latency) : []), [layers, metric, plan.abits, plan.headStem8bit, latency]);

  // the form shows the settings of the search on screen (a reload's included) ...
  useEffect(() => {
    if (!saved) return;
    const r = saved.request;
    setMetric(r.budget.metric);
    setValue(inUnit(r.budget.metric, r.budget.value));
    setBits(r.bits);
    setMode(r.mode);
    if (r.iters !== undefined) setIters(r.iters);
  }, [saved]);
  // ... and, before any, proposes a budget between the usual candidates, until the user types one
  const typed = useRef(false);
  const proposed = references.find((r) => r.bits === PROPOSED_BITS)?.cost;
  useEffect(() => {
    if (!saved && !typed.current && proposed !== undefined) setValue(budgetFor(metric, proposed));
  }, [saved, metric, proposed]);
  const changeMetric = (m: CostMetric) => {
    setMetric(m);
    // a number in another unit means nothing: propose that metric's reference, or leave the field to the user
    const cost = layers ? uniformCosts(m, layers, plan.abits, plan.headStem8bit, [PROPOSED_BITS], latency)[0]?.cost : undefined;
    typed.current = false;
    setValue(cost !== undefined ? budgetFor(m, cost) : '');
  };

  const report = saved?.report ?? null;
  const points = useMemo(() => (report ? searchPoints(report) : []), [report]);
  const current = useMemo(() => (layers ? planBits(plan, layers) : null), [plan, layers]);
  const measured = useMemo(() => (layers && project?.modelName ? measuredRuns(history, project.modelName, layers, points) : []), [history, project?.modelName, layers, points]);

  if (!project?.summary) return null;
  const searching = status.kind === 'running';
  const budget = Number(value) * METRIC_UNITS[metric].scale;
  const problems = [
    bits.length < 2 ? 'Pick at least two candidate widths.' : '',
    !(budget > 0) ? 'Give the budget as a positive number.' : '',
    plan.headStem8bit && !bits.includes(8) ? 'The plan keeps the first and last layers at 8 bits: 8 must be a candidate (or untick that rule in the plan).' : '',
    project.calibImages === 0 ? 'Add calibration images: the sensitivities are measured on them.' : '',
  ].filter(Boolean);
  const disabled = searching || runKind === 'running';
  const search = () =>
    void startSearch({
      budget: { metric, value: budget },
      bits: [...bits].sort((a, b) => a - b),
      mode,
      ...(mode === 'reconstructed' ? { iters } : {}),
      abits: plan.abits,
      headStem8bit: plan.headStem8bit,
      method: plan.method,
      seed: plan.seed ?? 0,
      ...(metric === 'latency' && imported ? { latencyTable: imported.table } : {}),
    });
  const load = (p: SearchPoint) => loadBits(p.layerBits);
  const hasOverrides = Object.keys(plan.layerBits ?? {}).length > 0;
  const loadedKey = report && current ? bitsKey(report.layers, current) : '';

  return (
    <section className="card wide" aria-labelledby="mp-title">
      <h2 id="mp-title">Mixed precision</h2>
      <p className="hint">Searches a weight width per layer within a budget, then loads it into the plan: press Run to measure it.</p>
      <Explanation />
      <div className="form mp-form">
        <div className="row">
          <label>
            Budget on
            <select value={metric} disabled={disabled} onChange={(e) => changeMetric(e.target.value as CostMetric)}>
              {(Object.keys(METRIC_LABELS) as CostMetric[]).map((m) => (
                <option key={m} value={m} disabled={m === 'bitops' && layers?.some((l) => l.macs === null)}>
                  {METRIC_LABELS[m]}
                </option>
              ))}
            </select>
          </label>
          <label>
            {`Budget (${METRIC_UNITS[metric].unit})`}
            <input type="number" min={0} step="any" value={value} disabled={disabled} onChange={(e) => {
                typed.current = true;
                setValue(e.target.value);
              }}
            />
          </label>
        </div>
        <p className="hint" data-testid="uniform-costs">
          {references.length > 0 ? 'Uniform plans for reference (click to use as the budget): ' : metric === 'latency' ? 'The uniform plans’ latencies are known once the layers have been timed, by the first search with a latency budget.' : ''}
          {references.map((r) => (
            <button key={r.bits} type="button" className="small link" disabled={disabled} data-bits={r.bits} data-cost={budgetFor(metric, r.cost)} onClick={() => setValue(budgetFor(metric, r.cost))} aria-label={`Use the cost of uniform W${r.bits}, ${formatCost(metric, r.cost)}, as the budget`}>
              {`W${r.bits}: ${formatCost(metric, r.cost)}`}
            </button>
          ))}
        </p>
        {metric === 'latency' && (
          <div className="row">
            <label className="button">
              Import a latency table…
              <input type="file" accept=".json,application/json" hidden disabled={disabled} aria-label="Import a latency table (JSON) measured on the target device" onChange={(e) => e.target.files?.[0] && void importTable(e.target.files[0])} />
            </label>
            <span className="hint" data-testid="latency-source">
              {imported ? `Using ${imported.name}.` : 'No table imported: the layers are timed in this tab.'}
            </span>
            {imported && (
              <button type="button" className="small link" disabled={disabled} onClick={() => setImported(null)}>
                Time the layers here instead
              </button>
            )}
            {importError && (
              <p role="alert" className="error">
                {importError}
              </p>
            )}
          </div>
        )}
        {metric === 'latency' && !imported && (
          <p className="hint">
            Latency comes from a table measured in this tab: each layer alone at each width, with ONNX Runtime’s WASM build on one thread (what the studio evaluates exports with). That runtime widens 2- to 4-bit weights before computing, so
            the width barely moves its time: the table tells about this device and runtime only.
          </p>
        )}
        <fieldset className="mp-bits" disabled={disabled}>
          <legend>Candidate weight bits</legend>
          {CANDIDATES.map((b) => (
            <label key={b} className="check">
              <input type="checkbox" checked={bits.includes(b)} onChange={(e) => setBits(e.target.checked ? [...bits, b].sort((x, y) => x - y) : bits.filter((x) => x !== b))} />
              {`W${b}`}
            </label>
          ))}
        </fieldset>
        <fieldset className="mp-bits" disabled={disabled}>
          <legend>Sensitivity measurement</legend>
          <label className="check">
            <input type="radio" name="mp-mode" value="cheap" checked={mode === 'cheap'} onChange={() => setMode('cheap')} />
            Cheap: round-to-nearest (seconds)
          </label>
          <label className="check">
            <input type="radio" name="mp-mode" value="reconstructed" checked={mode === 'reconstructed'} onChange={() => setMode('reconstructed')} />
            Full: after a short BRECQ reconstruction (slow: tens of minutes for the demo)
          </label>
          {mode === 'reconstructed' && (
            <label>
              BRECQ iterations per entry
              <input type="number" min={1} step={50} value={iters} onChange={(e) => setIters(Math.max(1, Math.floor(Number(e.target.value) || 1)))} />
            </label>
          )}
        </fieldset>
        <p className="hint">{`From the plan: activations ${plan.abits === null ? 'float' : `A${plan.abits}`}${plan.headStem8bit ? ', first and last layers pinned at 8 bits' : ''}.`}</p>
      </div>
      <div className="row">
        <button type="button" className="primary" disabled={disabled || problems.length > 0} onClick={search}>
          Search
        </button>
        {searching && (
          <button type="button" onClick={cancelSearch}>
            Cancel search
          </button>
        )}
      </div>
      {problems.length > 0 && <p className="hint">{problems.join(' ')}</p>}
      {searching && (
        <div className="progress-block" role="status" aria-live="polite">
          <span>{status.phase ? SEARCH_PHASE_LABELS[status.phase] : 'Starting the search'}</span>
          <progress max={status.total} value={status.done} aria-label={status.phase ? SEARCH_PHASE_LABELS[status.phase] : 'Search progress'} />
        </div>
      )}
      {status.kind === 'cancelled' && <p role="status">Search cancelled.</p>}
      {status.kind === 'failed' && (
        <p role="alert" className="error">
          {status.message}
        </p>
      )}
      {saved && report && layers && current && (
        <>
          <p className="hint" data-testid="mp-summary">
            {`Chosen within ${report.budget.metric} ≤ ${formatCost(report.budget.metric, report.budget.value)}: ${formatCost(report.budget.metric, report.chosen.cost)}, proxy ${report.chosen.proxy.toPrecision(4)}. Sensitivities: ${report.sensitivity.label}, ${report.sensitivity.images} images${saved.reusedSensitivity ? ', reused from the previous search' : ''}${report.latency ? `; latency: ${report.latency.device}${saved.reusedLatency ? ', reused' : ''}` : ''}.`}
          </p>
          <h3>Sensitivity per layer and width</h3>
          <SensitivityHeatmap table={report.sensitivity} dark={dark} />
          <h3>Pareto front</h3>
          <ParetoChart report={report} points={points} loadedKey={loadedKey} onLoad={load} disabled={runKind === 'running'} dark={dark} />
          <h3>Weight bits per layer in the plan</h3>
          <LayerBitsChart layers={layers} bits={current} dark={dark} />
          <div className="row">
            <span className="hint" data-testid="plan-bits-label">{`The plan: ${planBitsLabel(plan)}, ${plan.method}.`}</span>
            {hasOverrides && (
              <button type="button" className="small" disabled={runKind === 'running'} onClick={() => setPlan({ layerBits: {} })}>
                Clear the per-layer bits
              </button>
            )}
          </div>
          {measured.length > 0 && (
            <>
              <h3>Measured</h3>
              <table className="blocks" data-testid="mp-measured">
                <caption className="sr-only">Runs of the search’s configurations, from the history</caption>
                <thead>
                  <tr>
                    <th scope="col">Configuration</th>
                    <th scope="col">{`Cost (${METRIC_UNITS[report.budget.metric].unit})`}</th>
                    <th scope="col">Proxy loss</th>
                    <th scope="col">Run</th>
                    <th scope="col">Quantized top-1</th>
                    <th scope="col">Exported top-1</th>
                  </tr>
                </thead>
                <tbody>
                  {measured.map(({ point, run }) => (
                    <tr key={run.id} data-uniform={point.uniform ?? 'mixed'}>
                      <th scope="row">{point.uniform !== null ? `uniform W${point.uniform}` : `mixed${point.chosen ? ' (chosen)' : ''}`}</th>
                      <td>{(point.cost / METRIC_UNITS[report.budget.metric].scale).toPrecision(4)}</td>
                      <td>{point.proxy.toPrecision(4)}</td>
                      <td>{`${run.plan.method}, A${run.plan.abits ?? 32}`}</td>
                      <td>{pct(run.quant)}</td>
                      <td>{pct(run.exported)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </>
      )}
    </section>
  );
}
