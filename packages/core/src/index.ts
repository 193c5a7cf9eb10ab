export { ClusterSessionError, isClusterSessionError, isAnswerable, type Answerable } from './errors.ts';
export { answerFrom, rawAnswer, renderAnswer, sendAnswer, type ErrorAnswer, type SendOptions } from './answer.ts';
export { deadline } from './deadline.ts';
export { suggest } from './suggest.ts';
export { describeProblem, fail, parseOptions, show, type Frozen, type OptionContext, type ParseOptions, type Problem } from './options.ts';
export { rule, words, type OptionMeta, type RuleWords } from './words.ts';
export { COOKIE_NAME, cookieSchema } from './cookie.ts';
export { clusterEnv, readWorkerEnv, slotEnv, WORKER_ENV, type ClusterEnv, type WorkerEnv } from './worker-env.ts';
export { CHANNELS, storeOperationChannel, storeUnavailableChannel, type StoreOperation, type StoreUnavailableAnswer } from './channels.ts';
