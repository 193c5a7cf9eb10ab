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
  type OptionMeta,
  type ParseOptions,
  type Problem,
  type RuleWords,
} from './options.ts';
export { COOKIE_NAME, cookieRules, cookieShape } from './cookie.ts';
export { clusterEnv, readWorkerEnv, slotEnv, WORKER_ENV, type ClusterEnv, type WorkerEnv } from './worker-env.ts';
