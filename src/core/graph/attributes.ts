import { AttributeType, type Attribute, type NodeProto } from '../onnx/schema';
import { decodeUtf8 } from '../onnx/wire';

const find = (node: NodeProto, name: string): Attribute | undefined => node.attribute?.find((a) => a.name === name);

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  return find(node, name)?.i ?? fallback;
}

export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  return find(node, name)?.f ?? fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  return find(node, name)?.ints;
}

export function attrString(node: NodeProto, name: string, fallback: string): string {
  const s = find(node, name)?.s;
  return s ? decodeUtf8(s) : fallback;
}

export function intAttr(name: string, i: number): Attribute {
  return { name, type: AttributeType.INT, i };
}

export function intsAttr(name: string, ints: number[]): Attribute {
  return { name, type: AttributeType.INTS, ints };
}
