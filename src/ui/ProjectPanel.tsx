import { useStudio } from '../state/store';

const fmt = (n: number): string => n.toLocaleString('en-US');

export function ProjectPanel() {
  const project = useStudio((s) => s.project);
  if (!project?.summary) return null;
  const { summary } = project;
  const input = summary.inputs[0];
  return (
    <section className="card" aria-labelledby="model-title">
      <h2 id="model-title">Model</h2>
      <dl className="facts" data-testid="model-summary">
        <dt>File</dt>
        <dd>{project.modelName}</dd>
        <dt>Input</dt>
        <dd>
          {input?.name} [{input?.shape.join(' × ')}]
        </dd>
        <dt>Parameters</dt>
        <dd>{fmt(summary.params)}</dd>
        <dt>MACs / image</dt>
        <dd>{summary.macs === null ? 'unknown' : fmt(summary.macs)}</dd>
        <dt>Layers</dt>
        <dd>{summary.layers.length} quantizable (Conv / Gemm / MatMul)</dd>
        {summary.blocks && (
          <>
            <dt>Blocks</dt>
            <dd data-testid="blocks">{`${summary.blocks.length}: ${summary.blocks.map((b) => b.id).join(', ')} (see Layers by block)`}</dd>
          </>
        )}
        <dt>Ops</dt>
        <dd>
          {Object.entries(summary.ops)
            .map(([op, n]) => `${op} ×${n}`)
            .join(', ')}
        </dd>
        <dt>Calibration</dt>
        <dd data-testid="calib-count">{project.calibImages ? `${fmt(project.calibImages)} images` : 'none yet: drop a flat folder of images'}</dd>
        <dt>Validation</dt>
        <dd data-testid="val-count">{project.valImages ? project.classes ? `${fmt(project.valImages)} images in ${project.classes.length} classes` : `${fmt(project.valImages)} images without labels: fidelity to the float model is measured` : 'none: accuracy will not be measured'}</dd>
      </dl>
      {project.warnings.map((w) => (
        <p key={w} className="warning" role="alert">
          {w}
        </p>
      ))}
    </section>
  );
}
