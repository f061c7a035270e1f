import { useStudio } from '../state/store';
import type { Bits } from '../core/quant/quantizer';

const WEIGHT_BITS: Bits[] = [8, 4, 3, 2];
const ACT_BITS: (Bits | null)[] = [8, 4, null];

export function PlanPanel() {
  const { plan, setPlan, run, project } = useStudio();
  const disabled = run.kind === 'running' || !project?.summary;
  return (
    <section className="card" aria-labelledby="plan-title">
      <h2 id="plan-title">Plan</h2>
      <div className="form">
        <label>
          Method
          <select value={plan.method} disabled={disabled} onChange={() => setPlan({ method: 'rtn' })}>
            <option value="rtn">Round to nearest (min–max)</option>
          </select>
        </label>
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
        <label className="check">
          <input type="checkbox" checked={plan.headStem8bit} disabled={disabled} onChange={(e) => setPlan({ headStem8bit: e.target.checked })} />
          First and last layers at 8 bits
        </label>
      </div>
      <p className="hint">
        Weights: symmetric, per output channel, min–max range. Activations: asymmetric uint8 per tensor, after each ReLU and residual add, ranges from the calibration images.
      </p>
    </section>
  );
}
