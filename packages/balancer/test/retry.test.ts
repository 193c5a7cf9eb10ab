// The retry and ejection policy (src/retry.ts) as tables: pure functions, every case written out.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ANSWER_FAILURE,
  ANSWER_NEUTRAL,
  ANSWER_RECOVERY,
  answerVerdict,
  failureAnswer,
  NEXT_ABORT,
  NEXT_ANSWER,
  NEXT_FRESH,
  NEXT_OTHER,
  onFailure,
  retryAnswer,
  type Attempt,
  type Failure,
} from '../src/retry.ts';

const NEXT = { [NEXT_ABORT]: 'abort', [NEXT_FRESH]: 'fresh', [NEXT_OTHER]: 'other', [NEXT_ANSWER]: 'answer' } as Record<number, string>;

const failure = (f: Partial<Failure>): Failure => ({ connected: true, received: 0, reused: false, timedOut: false, invalid: false, ...f });
const attempt = (a: Partial<Attempt>): Attempt => ({ started: false, replayable: true, attempt: 0, freshOnly: false, retries: 2, ...a });

describe('onFailure: what a failed attempt leads to', () => {
  // [case, failure, attempt, next, status, counts toward ejection, stale]
  const table: Array<[string, Partial<Failure>, Partial<Attempt>, string, number, boolean, boolean]> = [
    ['refused: nothing sent, any method goes elsewhere', { connected: false }, { replayable: false }, 'other', 502, true, false],
    ['refused, no attempt left', { connected: false }, { attempt: 2 }, 'answer', 502, true, false],
    ['refused with retries: 0', { connected: false }, { retries: 0 }, 'answer', 502, true, false],
    ['connect timeout', { connected: false, timedOut: true }, {}, 'other', 504, true, false],
    ['reset after sending, no answer byte, GET', {}, {}, 'other', 502, true, false],
    ['reset after sending, no answer byte, POST: may have run', {}, { replayable: false }, 'answer', 502, true, false],
    ['stale pooled connection, GET: one more try, fresh', { reused: true }, {}, 'fresh', 502, false, true],
    ['stale pooled connection, GET, after its fresh try', { reused: true }, { freshOnly: true }, 'other', 502, false, true],
    ['stale pooled connection, GET, fresh try used, no attempt left', { reused: true }, { freshOnly: true, attempt: 2 }, 'answer', 502, false, true],
    ['stale pooled connection, POST: not replayed, not counted', { reused: true }, { replayable: false }, 'answer', 502, false, true],
    ['response timeout on a pooled connection is not stale', { reused: true, timedOut: true }, {}, 'other', 504, true, false],
    ['response timeout, POST', { timedOut: true }, { replayable: false }, 'answer', 504, true, false],
    ['part of the answer received, GET: never replayed', { received: 40 }, {}, 'answer', 502, true, false],
    ['invalid answer (not HTTP/1.1)', { received: 12, invalid: true }, {}, 'answer', 502, true, false],
    ['part of the answer went to the client: cut', { received: 300 }, { started: true }, 'abort', 502, true, false],
    ['timeout after an interim answer went out: cut', { received: 30, timedOut: true }, { started: true }, 'abort', 504, true, false],
  ];
  for (const [name, f, a, next, status, counts, stale] of table) {
    test(name, () => {
      const d = onFailure(failure(f), attempt(a));
      assert.deepEqual({ next: NEXT[d.next], status: d.status, counts: d.counts, stale: d.stale }, { next, status, counts, stale });
    });
  }
});

describe('retryAnswer: an answer sent elsewhere instead of to the client', () => {
  const retryOn = new Set([502, 503, 504]);
  const yes = () => true;
  const no = () => false;
  // [case, status, attempt, another instance, retryOn, expected]
  const table: Array<[string, number, Partial<Attempt>, () => boolean, ReadonlySet<number>, boolean]> = [
    ['503 for a GET, another instance free', 503, {}, yes, retryOn, true],
    ['503, but no other instance', 503, {}, no, retryOn, false],
    ['500 is the application speaking', 500, {}, yes, retryOn, false],
    ['200', 200, {}, yes, retryOn, false],
    ['503 for a POST', 503, { replayable: false }, yes, retryOn, false],
    ['503 after an interim answer reached the client', 503, { started: true }, yes, retryOn, false],
    ['503 with no attempt left', 503, { attempt: 2 }, yes, retryOn, false],
    ['503 with retryOn: []', 503, {}, yes, new Set(), false],
    ['500 when retryOn has it', 500, {}, yes, new Set([500]), true],
  ];
  for (const [name, status, a, other, on, expected] of table) test(name, () => assert.equal(retryAnswer(status, on, attempt(a), other), expected));

  test('the instance scan is the last thing asked', () => {
    const scan = () => assert.fail('scanned for another instance although the answer is passed on anyway');
    assert.equal(retryAnswer(200, retryOn, attempt({}), scan), false);
    assert.equal(retryAnswer(503, retryOn, attempt({ replayable: false }), scan), false);
  });
});

describe('answerVerdict: what an answer says about its instance', () => {
  const table: Array<[number, number]> = [
    [101, ANSWER_RECOVERY],
    [200, ANSWER_RECOVERY],
    [304, ANSWER_RECOVERY],
    [404, ANSWER_RECOVERY],
    [499, ANSWER_RECOVERY],
    [500, ANSWER_NEUTRAL],
    [501, ANSWER_NEUTRAL],
    [502, ANSWER_FAILURE],
    [503, ANSWER_FAILURE],
    [504, ANSWER_FAILURE],
    [505, ANSWER_NEUTRAL],
    [599, ANSWER_NEUTRAL],
  ];
  for (const [status, verdict] of table) test(String(status), () => assert.equal(answerVerdict(status), verdict));
});

describe('failureAnswer: the balancer’s own answer when no attempt is left', () => {
  test('timeout, failure, invalid answer', () => {
    assert.deepEqual(failureAnswer(504, false), { status: 504, code: 'CS_ERR_BALANCER_GATEWAY_TIMEOUT', reason: 'the instance did not answer in time' });
    assert.deepEqual(failureAnswer(502, false), { status: 502, code: 'CS_ERR_BALANCER_BAD_GATEWAY', reason: 'the instance failed before answering' });
    assert.deepEqual(failureAnswer(502, true), { status: 502, code: 'CS_ERR_BALANCER_BAD_GATEWAY', reason: 'the instance sent an invalid response' });
  });
});
