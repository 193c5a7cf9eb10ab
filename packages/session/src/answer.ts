import type { ErrorRequestHandler, Response } from 'express';
import { answerFrom, isAnswerable, sendAnswer, storeUnavailableChannel, type SendOptions } from '@cluster-session/core';
import { SessionSaveError } from './errors.ts';

/**
 * Answers a request with one of the errors a session can fail with (store down: 503, too large: 413, a JWT that
 * cannot be issued: 413/500), in core's JSON error answer, the same in both modes. Anything else is a 500 that
 * says only that the session could not be saved.
 */
export function sendSessionError(res: Response, err: unknown, options?: SendOptions): void {
  const answer = answerFrom(isAnswerable(err) ? err : new SessionSaveError('the session could not be saved', { cause: err }));
  if (answer.status === 503 && storeUnavailableChannel.hasSubscribers) storeUnavailableChannel.publish({ code: answer.code, reason: answer.error });
  sendAnswer(res, answer, options);
}

/** Express error middleware for the errors login()/logout()/save() reject with in a route; others pass on. */
export const errorHandler: ErrorRequestHandler = (err, req, res, next) => {
  if (!isAnswerable(err)) return next(err);
  // The store just failed: answering must not try to save the session again.
  (req as { session?: unknown }).session = undefined;
  sendSessionError(res, err);
};
