import { useStudio } from '../state/store';
import type { Bits } from '../core/quant/quantizer';
import { ADAROUND_ITERS, type MethodName, type ScaleSearch } from '../core/plan';

const WEIGHT_BITS: Bits[] = [8, 4, 3, 2];
const ACT_BITS: (Bits | null)[] = [8, 4, null];

export function PlanPanel() {
  const { plan, setPlan, run, project, loadPlan, planError } = useStudio();
  const disabled = run.kind === 'running' || !project?.summary;
  return (
    <section className="card" aria-labelledby="plan-title">
      <h2 id="plan-title">Plan</h2>
      <div className="form">
        <label>
          Method
          <select value={plan.method} disabled={disabled} onChange={(e) => setPlan({ method: e.target.value as MethodName })}>
            <option value="rtn">Round to nearest (min–max)</option>
            <option value="adaround">AdaRound (learned rounding, layer by layer)</option>
          </select>
        </label>
        {plan.method === 'adaround' && (
          <label>
            Iterations per layer
            <input
              type="number"
              min={1}
              step={100}
              value={plan.iters ?? ADAROUND_ITERS}
              disabled={disabled}
              onChange={(e) => setPlan({ iters: Math.max(1, Math.floor(Number(e.target.value) || 1)) })}
            />
          </label>
        )}
        <label>
          Weight bits
          <select value={plan.wbits} disabled={disabled} onChange={(e) => setPlan({ wbits: Number(e.target.value) as Bits })}>
            {WEIGHT_BITS.map((b) => (
              <option key={b} value={b}>
                W{b}
              </option>
            ))}
          </select>
        </label>
        <label>
          Activation bits
          <select value={plan.abits ?? 'none'} disabled={disabled} onChange={(e) => setPlan({ abits: e.target.value === 'none' ? null : (Number(e.target.value) as Bits) })}>
            {ACT_BITS.map((b) => (
              <option key={String(b)} value={b ?? 'none'}>
                {b ? `A${b}` : 'float (weight-only)'}
              </option>
            ))}
          </select>
        </label>
        <label>
          Weight step size
          <select value={plan.scale ?? (plan.method === 'rtn' ? 'minmax' : 'lp')} disabled={disabled} onChange={(e) => setPlan({ scale: e.target.value as ScaleSearch })}>
            <option value="minmax">Min–max per channel</option>
            <option value="lp">2.4-norm search (BRECQ)</option>
          </select>
        </label>
        <label className="check">
          <input type="checkbox" checked={plan.headStem8bit} disabled={disabled} onChange={(e) => setPlan({ headStem8bit: e.target.checked })} />
          First and last layers at 8 bits
        </label>
      </div>
      <div className="row">
        <label className="button">
          Load plan…
          <input type="file" accept=".json,application/json" hidden disabled={disabled} aria-label="Load a saved plan" onChange={(e) => e.target.files?.[0] && void loadPlan(e.target.files[0])} />
        </label>
      </div>
      {planError && (
        <p role="alert" className="error">
          {planError}
        </p>
      )}
      <p className="hint">
        {plan.method === 'rtn'
          ? 'Round to nearest: each weight goes to the closest point of a symmetric per-channel grid. '
          : 'AdaRound learns, for every weight, whether to round down or up, so that each layer’s output (after its activation) stays closest to the float model’s on the calibration images. The paper uses 10,000 iterations per layer. '}
        Activations: asymmetric uint8 per tensor, after each ReLU and residual add, ranges measured with the quantized weights.
      </p>
    </section>
  );
}
