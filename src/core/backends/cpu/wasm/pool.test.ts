import { describe, expect, it } from 'vitest';
import { ThreadPool, threadsSupported } from './pool';

/*
 * The worker pool on a tiny hand-assembled module over a shared memory:
 *   (func (export "f") (param $bad i32) (param $tid i32) (param $n i32)
 *     memory[4·tid] = tid + 1; trap (unreachable) when tid == bad)
 */
const MODULE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 3, 127, 127, 127, 0, 2, 16, 1, 3, 101, 110, 118, 6, 109, 101, 109, 111, 114, 121, 2, 3, 1, 1, 3, 2,
  1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 26, 1, 24, 0, 32, 1, 65, 2, 116, 32, 1, 65, 1, 106, 54, 2, 0, 32, 1, 32, 0, 70, 4, 64, 0, 11, 11,
]);

async function pool(size: number) {
  const module = await WebAssembly.compile(MODULE);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const { exports } = await WebAssembly.instantiate(module, { env: { memory } });
  const words = new Int32Array(memory.buffer, 0, 8);
  return { p: await ThreadPool.create(module, memory, exports as Record<string, unknown>, size, ['f']), words };
}

describe.runIf(threadsSupported())('ThreadPool', () => {
  it('runs the function once on every thread, with tids 0…size−1, and returns when all are done', async () => {
    const { p, words } = await pool(3);
    for (let round = 0; round < 50; round++) {
      words.fill(0);
      p.run(0, [-1]);
      expect([...words.subarray(0, 4)]).toEqual([1, 2, 3, 0]);
    }
    p.dispose();
  });

  it('a trap in a worker or in the calling thread becomes an error, and the pool keeps working', async () => {
    const { p, words } = await pool(2);
    expect(() => p.run(0, [1])).toThrow(/failed in a worker/);
    expect(() => p.run(0, [0])).toThrow(WebAssembly.RuntimeError);
    words.fill(0);
    p.run(0, [-1]);
    expect([...words.subarray(0, 2)]).toEqual([1, 2]);
    p.dispose();
    expect(() => p.run(0, [-1])).toThrow(/dispose/);
  });
});
