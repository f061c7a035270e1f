import { useStudio } from '../state/store';
import type { BackendChoice } from '../core/backends/select';

const BACKEND_LABELS: Record<BackendChoice, string> = {
  auto: 'Automatic (WebGPU when there is a GPU, else WASM)',
  webgpu: 'WebGPU (even a software adapter)',
  wasm: 'WASM on the CPU',
};

/**
 * Where runs compute: a preference of this browser, not part of the plan, because it changes
 * only the speed (WASM gives the same bytes for any thread count; WebGPU agrees to float rounding).
 */
export function ComputeSettings({ disabled }: { disabled: boolean }) {
  const { compute, setCompute } = useStudio();
  // more threads than cores only fight over them; threads need a cross-origin isolated page
  const cores = Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
  const threaded = globalThis.crossOriginIsolated === true;
  return (
    <fieldset className="form" aria-describedby="compute-hint">
      <legend>Compute</legend>
      <label>
        Block reconstruction on
        <select value={compute.backend} disabled={disabled} onChange={(e) => setCompute({ backend: e.target.value as BackendChoice })}>
          {(Object.keys(BACKEND_LABELS) as BackendChoice[]).map((b) => (
            <option key={b} value={b}>
              {BACKEND_LABELS[b]}
            </option>
          ))}
        </select>
      </label>
      <label>
        CPU threads
        <select
          value={String(compute.threads)}
          disabled={disabled || !threaded}
          onChange={(e) => setCompute({ threads: e.target.value === 'auto' ? 'auto' : Number(e.target.value) })}
        >
          <option value="auto">Automatic ({cores > 4 ? 4 : cores})</option>
          {Array.from({ length: cores }, (_, i) => i + 1).map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <p className="hint" id="compute-hint">
        {threaded ? 'Speed only: the numbers do not depend on these choices. ' : 'This page is not cross-origin isolated, so the WASM kernels run on one thread. '}
        WebGPU runs BRECQ’s and QDrop’s weight reconstruction; the rest of a run, and blocks with operations WebGPU lacks, stay on the CPU. The run log says which ran where.
      </p>
    </fieldset>
  );
}
