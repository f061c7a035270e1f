import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';

/** WASM threads need SharedArrayBuffer, which needs cross-origin isolation (shared/docs/platform.md). */
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  plugins: [react()],
  server: { headers: isolation, port: 5173, strictPort: true },
  preview: { headers: isolation, port: 4173, strictPort: true },
  // pre-bundling ORT makes the dev server re-optimise and reload the page on first use
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    // webgpu-check.html is the WebGPU kernels' test page (e2e/webgpu.spec.ts), not part of the studio
    rolldownOptions: {
      input: {
        main: fileURLToPath(new URL('index.html', import.meta.url)),
        'webgpu-check': fileURLToPath(new URL('webgpu-check.html', import.meta.url)),
      },
    },
  },
});
