import { rng } from '../random';

/**
 * Seeded mutations of valid inputs for fuzzing the decoders: bit flips, byte overwrites with
 * boundary values, truncations, duplicated and deleted runs. The same seed gives the same cases.
 */
export function* mutations(seed: Uint8Array, count: number, seedNumber = 1): Generator<Uint8Array> {
  const rand = rng(seedNumber);
  const int = (n: number): number => Math.floor(rand() * n);
  const special = [0, 1, 0x7f, 0x80, 0xff, 0xfe];
  for (let k = 0; k < count; k++) {
    let b = seed.slice();
    const edits = 1 + int(4);
    for (let e = 0; e < edits && b.length > 0; e++) {
      const at = int(b.length);
      switch (int(5)) {
        case 0:
          b[at] = b[at]! ^ (1 << int(8));
          break;
        case 1:
          b[at] = special[int(special.length)]!;
          break;
        case 2:
          b = b.slice(0, at);
          break;
        case 3: {
          const len = 1 + int(Math.min(64, b.length - at));
          const out = new Uint8Array(b.length + len);
          out.set(b.subarray(0, at + len));
          out.set(b.subarray(at), at + len);
          b = out;
          break;
        }
        default: {
          const len = 1 + int(Math.min(64, b.length - at));
          const out = new Uint8Array(b.length - len);
          out.set(b.subarray(0, at));
          out.set(b.subarray(at + len), at);
          b = out;
        }
      }
    }
    yield b;
  }
}
