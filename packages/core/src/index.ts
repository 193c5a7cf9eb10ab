export { ClusterSessionError, isClusterSessionError, isAnswerable, type Answerable } from './errors.ts';
export { answerFrom, rawAnswer, renderAnswer, sendAnswer, type ErrorAnswer, type SendOptions } from './answer.ts';
export { deadline } from './deadline.ts';
export { suggest } from './suggest.ts';
export {
  describeProblem,
  fail,
  opt,
  parseOptions,
  show,
  type Frozen,
  type OptionContext,
  type ParseOptions,
  type Problem,
} from './options.ts';
export type { OptionMeta, RuleWords } from './words.ts';
export * as s from './builders.ts';
export {
  Schema,
  type AnySchema,
  type ArraySchema,
  type Check,
  type Failed,
  type Input,
  type Issue,
  type LeafSchema,
  type NumberSchema,
  type ObjectIn,
  type ObjectOut,
  type ObjectSchema,
  type Output,
  type ParseContext,
  type Parts,
  type RecordSchema,
  type RefineCtx,
  type Result,
  type Segment,
  type Shape,
  type StringSchema,
  type UnionSchema,
  type WrapSchema,
} from './schema.ts';
export { COOKIE_NAME, cookieRules, cookieShape } from './cookie.ts';
export { clusterEnv, readWorkerEnv, slotEnv, WORKER_ENV, type ClusterEnv, type WorkerEnv } from './worker-env.ts';
export { CHANNELS, storeOperationChannel, storeUnavailableChannel, type StoreOperation, type StoreUnavailableAnswer } from './channels.ts';
