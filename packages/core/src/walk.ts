import type { OptionMeta } from './words.ts';

/**
 * What the option kit reads back from a valibot schema: the words of the option at a path and the keys an object
 * there knows. valibot schemas are plain objects (`entries`, `item`, `wrapped`, `options`, `pipe`), so this is a
 * walk over data, no parsing.
 */
interface Node {
  readonly kind: string;
  readonly type: string;
  readonly wrapped?: Node;
  readonly options?: readonly Node[];
  readonly entries?: Readonly<Record<string, Node>>;
  readonly item?: Node;
  readonly value?: Node;
  readonly pipe?: readonly Node[];
  readonly metadata?: { readonly words?: OptionMeta };
  readonly literal?: unknown;
}
export type Key = string | number;

const asNode = (schema: unknown) => schema as Node;

/** A schema and what it hands its value to unchanged (the base of a pipe, the schema an optional wraps), outermost first. */
function layers(node: Node): Node[] {
  const out = [node];
  // A pipe copies its base schema's fields (`wrapped` among them), so the base alone leads on.
  if (node.pipe) out.push(...layers(node.pipe[0]!));
  else if (node.wrapped) out.push(...layers(node.wrapped));
  return out;
}

/** Every schema a value at this level may be checked by: the layers, a union's alternatives, the schemas of a pipe. */
function forms(node: Node): Node[] {
  const out = new Set<Node>();
  const visit = (n: Node) => {
    if (out.has(n)) return;
    out.add(n);
    if (n.wrapped) visit(n.wrapped);
    if (n.type === 'union' || n.type === 'variant') n.options!.forEach(visit);
    for (const item of n.pipe ?? []) if (item.kind === 'schema') visit(item);
  };
  visit(node);
  return [...out];
}

/** The schemas a path can lead to (a union may offer several). */
function schemasAt(root: unknown, path: readonly Key[]): Node[] {
  let current = [asNode(root)];
  for (const key of path) {
    const next = new Set<Node>();
    for (const f of current.flatMap(forms)) {
      if (f.entries) {
        if (typeof key === 'string' && Object.hasOwn(f.entries, key)) next.add(f.entries[key]!);
      } else if (f.type === 'array' && typeof key === 'number') next.add(f.item!);
      else if (f.type === 'record') next.add(f.value!);
    }
    current = [...next];
  }
  return current;
}

/** The words given with `words()` to the option at `path`, if any. */
export function wordsAt(root: unknown, path: readonly Key[]): OptionMeta | undefined {
  for (const s of schemasAt(root, path)) {
    for (const layer of layers(s)) {
      const found = layer.pipe?.find((item) => item.kind === 'metadata' && item.metadata?.words)?.metadata?.words;
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * The keys the objects at `path` know, in the order the schema lists them. Given the input `object` there, only
 * the objects whose literal keys it matches (the variant it means, not the others).
 */
export function keysAt(root: unknown, path: readonly Key[], object?: Readonly<Record<string, unknown>>): string[] {
  const objects = schemasAt(root, path).flatMap(forms).filter((f) => f.entries);
  const matches = (f: Node) => Object.entries(f.entries!).every(([k, n]) => n.type !== 'literal' || n.literal === object?.[k]);
  const meant = object ? objects.filter(matches) : [];
  const keys = new Set<string>();
  for (const f of meant.length > 0 ? meant : objects) for (const k of Object.keys(f.entries!)) keys.add(k);
  return [...keys];
}

/** Takes an array as it is (valibot's objects and records take one too, as an object with keys "0", "1", ...). */
const takesArray = (n: Node) => n.type === 'array' || n.type === 'custom' || n.type === 'unknown' || n.type === 'any';

/** The paths where `input` has an array but the schema takes only an object or a record there. */
export function arraysForObjects(root: unknown, input: unknown, path: readonly Key[] = []): Key[][] {
  if (typeof input !== 'object' || input === null) return [];
  const f = schemasAt(root, path).flatMap(forms);
  if (Array.isArray(input) && !f.some(takesArray)) return f.some((n) => n.entries || n.type === 'record') ? [[...path]] : [];
  // Down only where the schema describes what is inside (not into a client or a logger the app hands in).
  if (!f.some((n) => n.entries || n.type === 'record' || n.type === 'array')) return [];
  const keyed = input as Record<string, unknown>;
  return Object.keys(keyed).flatMap((k) => arraysForObjects(root, keyed[k], [...path, Array.isArray(input) ? Number(k) : k]));
}
