import { describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../events';
import { openBackend } from './select';

/*
 * Node has no WebGPU (no navigator.gpu): every choice ends on the CPU engine, and the run says why
 * where a GPU was asked for. The WebGPU side is checked in Chromium (e2e/webgpu.spec.ts).
 */
describe('openBackend without WebGPU', () => {
  it("'wasm' is the CPU engine and says nothing; 'auto' falls back with an info, 'webgpu' with a warning", async () => {
    for (const [choice, type] of [
      ['wasm', null],
      ['auto', 'info'],
      ['webgpu', 'warning'],
    ] as const) {
      const events: PipelineEvent[] = [];
      const opened = await openBackend(choice, (e) => events.push(e));
      expect(opened.backend).toBeNull();
      opened.close();
      if (type === null) expect(events).toEqual([]);
      else expect(events).toEqual([{ type, message: 'block reconstruction on the CPU (WASM): WebGPU is not available here (no navigator.gpu)' }]);
    }
  });
});
