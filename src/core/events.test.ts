import { describe, expect, it } from 'vitest';
import { CancelledError, PauseGate, cooperative } from './events';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A paced loop of `n` iterations that records how far it got. */
function loop(signal: AbortSignal, n: number) {
  const state = { done: 0 };
  const finished = (async () => {
    const pace = cooperative(signal);
    for (let i = 0; i < n; i++) {
      await pace();
      state.done++;
      // a little work per iteration, so the loop spans many event-loop turns
      if (i % 10 === 0) await sleep(1);
    }
  })();
  return { state, finished };
}

describe('PauseGate', () => {
  it('holds a paced loop where it is while paused, and lets it finish after resume', async () => {
    const controller = new AbortController();
    const gate = new PauseGate(controller.signal);
    const { state, finished } = loop(controller.signal, 400);
    await sleep(5);
    await gate.pause();
    expect(gate.holding).toBe(true);
    const at = state.done;
    expect(at).toBeLessThan(400);
    await sleep(150);
    // not one iteration ran while paused
    expect(state.done).toBe(at);
    gate.resume();
    await finished;
    expect(state.done).toBe(400);
    expect(gate.holding).toBe(false);
  });

  it('a cancel while paused releases the loop with CancelledError', async () => {
    const controller = new AbortController();
    const gate = new PauseGate(controller.signal);
    const { finished } = loop(controller.signal, 10_000);
    await gate.pause();
    controller.abort();
    await expect(finished).rejects.toBeInstanceOf(CancelledError);
  });

  it('close() answers a pause that no loop will ever reach, and the signal has no gate afterwards', async () => {
    const controller = new AbortController();
    const gate = new PauseGate(controller.signal);
    const pausing = gate.pause();
    gate.close();
    await pausing;
    expect(gate.paused).toBe(false);
    // a later loop on the same signal is not held by the closed gate
    const { state, finished } = loop(controller.signal, 50);
    await finished;
    expect(state.done).toBe(50);
  });

  it('loops on a signal without a gate are never held', async () => {
    const other = new AbortController();
    const gate = new PauseGate(new AbortController().signal);
    void gate.pause();
    const { state, finished } = loop(other.signal, 50);
    await finished;
    expect(state.done).toBe(50);
    gate.close();
  });
});
