import { useState, type DragEvent } from 'react';
import { useStudio } from '../state/store';
import { readDrop, readPicked } from './read-drop';

/** Drop a model (.onnx, with its .data) and image folders; or open the bundled demo. */
export function DropZone() {
  const { addFiles, openDemo, loading, loadError } = useStudio();
  const [over, setOver] = useState(false);
  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    await addFiles(await readDrop(e.dataTransfer));
  };
  return (
    <section
      className={`dropzone${over ? ' over' : ''}`}
      data-testid="dropzone"
      aria-label="Drop a model and image folders here"
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
    >
      <p className="drop-title">Drop an <b>.onnx</b> model and folders (or <b>.zip</b> archives) of PNG or JPEG images, or <b>.npy</b> arrays, here</p>
      <p className="hint">A flat folder is calibration data; a folder of class sub-folders is validation data (a flat one named <i>val</i> or <i>test</i>: validation without labels). Nothing leaves your machine.</p>
      <div className="row">
        <button type="button" className="primary" onClick={() => void openDemo()} disabled={loading !== null}>
          Open demo
        </button>
        <label className="button">
          Choose model…
          <input type="file" accept=".onnx,.data" multiple hidden onChange={(e) => e.target.files && void addFiles(readPicked(e.target.files))} />
        </label>
        <label className="button">
          Choose image folder…
          <input type="file" hidden multiple {...{ webkitdirectory: '' }} onChange={(e) => e.target.files && void addFiles(readPicked(e.target.files))} />
        </label>
      </div>
      {loading && <p role="status">{loading}</p>}
      {loadError && (
        <p role="alert" className="error">
          {loadError}
        </p>
      )}
    </section>
  );
}
