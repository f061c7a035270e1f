import IMAGENET_CLASSES from './imagenet-classes.json';

/** The 1000 ILSVRC-2012 classes in the index order of torchvision's (and most) ImageNet models. */
export const IMAGENET_CLASS_NAMES: readonly string[] = IMAGENET_CLASSES;

/**
 * The name of output `index` of a model with `outputs` classes: the project's own class names when
 * they cover the outputs (validation folders, a labels file), else ImageNet's for a 1000-way
 * model, else the bare index.
 */
export function classLabel(index: number, outputs: number, classes: readonly string[] | null): string {
  if (classes && classes.length === outputs) return classes[index]!;
  if (outputs === 1000) return IMAGENET_CLASS_NAMES[index]!;
  return `class ${index}`;
}
