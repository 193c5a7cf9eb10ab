// The schema builders under the short names packages write their option schemas with: `s.strictObject({ ... })`.
export {
  array,
  boolean,
  custom,
  discriminatedUnion,
  enumOf as enum,
  literal,
  looseObject,
  number,
  record,
  strictObject,
  string,
  union,
  unknown,
} from './schema.ts';
export type { Input as input, Output as output, RefineCtx } from './schema.ts';
