import { useStudio } from '../state/store';
import type { Bits, StepInit } from '../core/quant/quantizer';
import { ADAROUND_ITERS, BLOCK_ITERS, DECOUPLEQ_BLOCK_ITERS, METHODS, BLOCK_METHODS, GRANULARITIES, GROUP_SIZES, actScaleFor, scaleSearchFor, weightGridKindOf, type GroupSize, type MethodName, type WeightGridKind } from '../core/plan';
import type { Granularity } from '../core/graph/partition';
import { PartitionEditor } from './PartitionEditor';
import { ComputeSettings } from './ComputeSettings';
import { estimateRun, formatBytes, formatDuration } from '../core/estimate';

const WEIGHT_BITS: Bits[] = [8, 4, 3, 2];

const STEP_INIT_LABELS: Record<StepInit, string> = { minmax: 'Min–max', lp: '2.4-norm search (BRECQ)', mse: 'MSE observer (QDrop)', percentile: '99.99th percentile' };
const ACT_BITS: (Bits | null)[] = [8, 4, null];

const GRANULARITY_LABELS: Record<Granularity, string> = { layer: 'layer (one layer at a time)', block: 'block (residual blocks; the paper’s best)', stage: 'stage (blocks of one resolution)', net: 'network (everything at once)' };

/** What each method optimises and why it helps: the one-click explanation for newcomers and teaching. */
const METHOD_INFO: Record<MethodName, { label: string; explain: string }> = {
  rtn: { label: 'Round to nearest (baseline)', explain: 'Round to nearest: each weight goes to the closest point of its grid (the weight grid chosen below), one per output channel or per group of inputs. Fast, and fine at 8 bits; below 4 bits the rounding errors add up.' },
  adaround: {
    label: 'AdaRound (learned rounding, layer by layer)',
    explain: 'AdaRound learns, for every weight, whether to round down or up, so that each layer’s output (after its activation) stays closest to the float model’s on the calibration images. The paper uses 10,000 iterations per layer.',
  },
  brecq: {
    label: 'BRECQ (block reconstruction)',
    explain: 'BRECQ learns the rounding of all layers of a block (a residual block, say) together, so that the block’s output matches the float model’s: errors of one layer can be compensated by the next. Then it learns the activation step sizes, block by block. The reference runs 20,000 iterations per block.',
  },
  nwq: {
    label: 'NWQ (the whole network at once)',
    explain: 'NWQ learns every layer’s rounding and every activation step jointly over the whole network, so that errors can be compensated across blocks. Activations are compared with the float model’s at block (or layer) outputs; the rounding is a softmax whose temperature is annealed, and quantization noise is mixed in gradually. The most expensive method.',
  },
  decoupleq: {
    label: 'decoupleQ (integer and float parts solved apart; for 2-bit weights)',
    explain: 'decoupleQ writes each weight row as s·q + z with a float scale and offset, and alternates between choosing the integers q (with error feedback weighted by the layer’s input statistics) and solving s and z exactly. Then it refines s and z block by block. The offset is exported exactly, as an Add after the weight’s DequantizeLinear.',
  },
  qdrop: {
    label: 'QDrop (block reconstruction with activation noise)',
    explain: 'QDrop reconstructs each block with its activations already quantized, but randomly lets half of the values through in float. The weights learn to tolerate activation noise, which helps most at 4-bit activations and below.',
  },
};

/** Time and memory of the run as planned, before it starts. */
function Estimate() {
  const { plan, project } = useStudio();
  if (!project?.summary) return null;
  const e = estimateRun(project.summary, plan, project.calibImages, project.valImages);
  if (!e.fromShapes) return <p className="hint">The model's input shape is not fixed: no estimate of time and memory.</p>;
  return (
    <p className="estimate" data-testid="estimate">
      {`Estimate on this machine's class of CPU: about ${formatDuration(e.seconds)}, ${formatBytes(e.cacheBytes + e.workBytes)} of memory.`}
    </p>
  );
}

export function PlanPanel() {
  const { plan, setPlan, run, project, loadPlan, planError } = useStudio();
  const disabled = run.kind === 'running' || !project?.summary;
  const blockMethod = BLOCK_METHODS.includes(plan.method);
  const mixed = Object.keys(plan.layerBits ?? {}).length > 0;
  return (
    <section className="card" aria-labelledby="plan-title">
      <h2 id="plan-title">Plan</h2>
      <div className="form">
        <label>
          Method
          <select value={plan.method} disabled={disabled} onChange={(e) => setPlan({ method: e.target.value as MethodName })}>
            {METHODS.map((m) => (
              <option key={m} value={m}>
                {METHOD_INFO[m].label}
              </option>
            ))}
          </select>
        </label>
        {plan.method !== 'rtn' && (
          <label>
            {plan.method === 'decoupleq' ? 'Float refinement iterations per block' : `Iterations${plan.method === 'nwq' ? '' : ` per ${blockMethod ? 'block' : 'layer'}`}`}
            <input
              type="number"
              min={1}
              step={100}
              value={plan.iters ?? (plan.method === 'decoupleq' ? DECOUPLEQ_BLOCK_ITERS : blockMethod ? BLOCK_ITERS : ADAROUND_ITERS)}
              disabled={disabled}
              onChange={(e) => setPlan({ iters: Math.max(1, Math.floor(Number(e.target.value) || 1)) })}
            />
          </label>
        )}
        {plan.method === 'nwq' && (
          <label>
            Compare activations at
            <select value={plan.taps ?? 'block'} disabled={disabled} onChange={(e) => setPlan({ taps: e.target.value as 'block' | 'layer' })}>
              <option value="block">block outputs (light networks)</option>
              <option value="layer">layer outputs (ResNets)</option>
            </select>
          </label>
        )}
        {(plan.method === 'brecq' || plan.method === 'qdrop') && (
          <label>
            Reconstruct by
            <select value={plan.granularity ?? 'block'} disabled={disabled} onChange={(e) => setPlan({ granularity: e.target.value as Granularity, partitionEdits: [] })}>
              {GRANULARITIES.map((g) => (
                <option key={g} value={g}>
                  {GRANULARITY_LABELS[g]}
                </option>
              ))}
            </select>
          </label>
        )}
        <label>
          Weight bits
          {/* a plan from the mixed-precision search sets bits per layer: say so, and let one width replace it */}
          <select
            value={mixed ? 'mixed' : plan.wbits}
            disabled={disabled}
            onChange={(e) => setPlan({ wbits: Number(e.target.value) as Bits, layerBits: undefined })}
          >
            {mixed && (
              <option value="mixed" disabled>
                Mixed, per layer (W{Math.min(...Object.values(plan.layerBits!))}–{Math.max(...Object.values(plan.layerBits!))})
              </option>
            )}
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
          Weight granularity
          <select value={plan.groupSize ?? 'channel'} disabled={disabled} onChange={(e) => setPlan({ groupSize: e.target.value === 'channel' ? undefined : (Number(e.target.value) as GroupSize) })}>
            <option value="channel">Per output channel</option>
            {GROUP_SIZES.map((g) => (
              <option key={g} value={g}>
                Groups of {g} inputs
              </option>
            ))}
          </select>
        </label>
        {plan.method !== 'decoupleq' && (
          <label title="Below 8 bits. Asymmetric: codes 0 … 2^b − 1 with a zero point per channel, as the references. Symmetric: signed codes, zero point 0. 8-bit weights are always int8 symmetric.">
            Weight grid
            <select value={weightGridKindOf(plan)} disabled={disabled} onChange={(e) => setPlan({ weightGrid: e.target.value as WeightGridKind })}>
              <option value="asymmetric">Asymmetric, zero points</option>
              <option value="symmetric">Symmetric, signed</option>
            </select>
          </label>
        )}
        <label>
          Weight step size
          <select value={scaleSearchFor(plan)} disabled={disabled} onChange={(e) => setPlan({ scale: e.target.value as StepInit })}>
            {Object.entries(STEP_INIT_LABELS).map(([k, label]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </select>
        </label>
        {plan.abits !== null && (
          <label>
            Activation step size
            <select value={actScaleFor(plan)} disabled={disabled} onChange={(e) => setPlan({ actScale: e.target.value as StepInit })}>
              {Object.entries(STEP_INIT_LABELS).map(([k, label]) => (
                <option key={k} value={k}>
                  {label}
                </option>
              ))}
            </select>
          </label>
        )}
        {plan.method === 'brecq' && (
          <label className="check">
            <input type="checkbox" checked={plan.fisher === true} disabled={disabled} onChange={(e) => setPlan({ fisher: e.target.checked })} />
            Fisher-weighted block loss (the paper; the code uses plain MSE)
          </label>
        )}
        <label className="check">
          <input type="checkbox" checked={plan.headStem8bit} disabled={disabled} onChange={(e) => setPlan({ headStem8bit: e.target.checked })} />
          First and last layers at 8 bits
        </label>
      </div>
      {(plan.method === 'brecq' || plan.method === 'qdrop') && project?.summary && <PartitionEditor disabled={disabled} />}
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
      <ComputeSettings disabled={disabled} />
      {project?.summary && <Estimate />}
      <p className="hint">
        {METHOD_INFO[plan.method].explain} Activations: asymmetric unsigned per tensor, after each activation function and residual add, ranges measured with the quantized weights.
      </p>
    </section>
  );
}
