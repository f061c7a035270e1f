import { describe, expect, it } from 'vitest';
import { decodeModel, encodeModel, OnnxDecodeError } from './codec';
import { Reader, Writer, WireType } from './wire';
import { DataType, type ModelProto } from './schema';
import { packSubByte, tensorToFloat32, unpackSubByte } from './tensor-data';
import { tinyResNet } from '../testing/tiny-resnet';
import { ModelSession } from '../eval/runtime';

describe('protobuf wire format', () => {
  it('round-trips varints including negative int64 and values above 2^32', () => {
    const values = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, 2 ** 52, -1, -2, -(2 ** 40)];
    const w = new Writer();
    for (const v of values) w.varint(v);
    const r = new Reader(w.finish());
    expect(values.map(() => r.varint())).toEqual(values);
    expect(r.done).toBe(true);
  });

  it('encodes -1 as ten bytes, as protobuf does for int64', () => {
    const w = new Writer();
    w.varint(-1);
    expect(Array.from(w.finish())).toEqual([255, 255, 255, 255, 255, 255, 255, 255, 255, 1]);
  });
});

describe('ONNX codec', () => {
  it('re-encodes a decoded model byte for byte', () => {
    const bytes = encodeModel(tinyResNet());
    expect(encodeModel(decodeModel(bytes))).toEqual(bytes);
  });

  it('returns raw_data as a view into the input, not a copy', () => {
    const bytes = encodeModel(tinyResNet());
    const model = decodeModel(bytes);
    const raw = model.graph!.initializer![0]!.rawData!;
    expect(raw.buffer).toBe(bytes.buffer);
  });

  it('keeps fields it does not model (e.g. training_info) through a round trip', () => {
    const base = encodeModel(tinyResNet());
    const w = new Writer();
    w.raw(base);
    w.tag(20, WireType.LengthDelimited); // ModelProto.training_info
    w.bytes(new Uint8Array([0x0a, 0x00]));
    const withExtra = w.finish();
    const again = encodeModel(decodeModel(withExtra));
    expect(again.length).toBe(withExtra.length);
    expect(decodeModel(again).unknownFields?.length).toBe(1);
  });

  it('reads float_data and unpacked repeated fields', () => {
    const m: ModelProto = tinyResNet();
    const t = m.graph!.initializer![0]!;
    const values = tensorToFloat32(t);
    m.graph!.initializer![0] = { name: t.name, dims: t.dims, dataType: DataType.FLOAT, floatData: Float32Array.from(values) };
    const back = decodeModel(encodeModel(m)).graph!.initializer![0]!;
    expect(Array.from(tensorToFloat32(back))).toEqual(Array.from(values));
  });

  it('rejects truncated and non-ONNX bytes with OnnxDecodeError', () => {
    const bytes = encodeModel(tinyResNet());
    expect(() => decodeModel(bytes.subarray(0, bytes.length - 7))).toThrow(OnnxDecodeError);
    expect(() => decodeModel(new TextEncoder().encode('<html>not a model</html>'))).toThrow(OnnxDecodeError);
    expect(() => decodeModel(new Uint8Array(0))).toThrow(/empty/);
  });

  it('writes models that ONNX Runtime loads and runs', async () => {
    const session = await ModelSession.create(encodeModel(decodeModel(encodeModel(tinyResNet()))), 'all');
    const out = await session.run(new Float32Array(64), [1, 1, 8, 8]);
    expect(out.get('logits')!.dims).toEqual([1, 5]);
    await session.release();
  });
});

describe('sub-byte packing', () => {
  it('packs 4-bit two per byte, low nibble first, two’s complement', () => {
    expect(Array.from(packSubByte([1, -1, 7], 4))).toEqual([0xf1, 0x07]);
    expect(Array.from(unpackSubByte(packSubByte([1, -1, 7, -8], 4), 4, 4, true))).toEqual([1, -1, 7, -8]);
  });
  it('packs 2-bit four per byte, least significant pair first', () => {
    expect(Array.from(packSubByte([1, 2, 3, 0, 1], 2))).toEqual([0b00111001, 0b01]);
    expect(Array.from(unpackSubByte(packSubByte([-2, -1, 0, 1], 2), 4, 2, true))).toEqual([-2, -1, 0, 1]);
  });
});
