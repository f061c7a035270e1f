import { conv2dAttrs } from '../../cpu/reference/conv2d';
import { createWebGpuBackend } from '../backend';

/*
 * The parity page's worker: acquires WebGPU from a dedicated worker (where the studio's engine
 * runs) and runs one convolution, so the page can check the result and the adapter it reports.
 */
self.onmessage = async (e: MessageEvent<{ x: Float32Array; w: Float32Array }>) => {
  const r = await createWebGpuBackend({ allowSoftwareAdapter: true });
  if (!r.ok) {
    self.postMessage({ ok: false, reason: r.reason, message: r.message });
    return;
  }
  const b = r.backend;
  const x = b.upload({ shape: [1, 3, 6, 6], data: e.data.x });
  const w = b.upload({ shape: [4, 3, 3, 3], data: e.data.w });
  const y = b.conv2dForward(x, w, null, conv2dAttrs({ pads: [1, 1, 1, 1] }));
  const out = await b.read(y);
  b.dispose();
  r.backend.device.destroy();
  self.postMessage({ ok: true, adapter: r.adapter, y: out.data });
};
