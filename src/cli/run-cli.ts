import { execFile } from 'node:child_process';

/** `lowbit ARGS…` in a child process, as a user runs it (tests): its exit code and both streams. */
export function lowbit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/lowbit.mjs', ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
