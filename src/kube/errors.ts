// API failures as a small fixed set of results: the `result` label of the write metric and the
// key of "log only when it changes". Kept apart from client.ts so that code which only handles
// failures does not load @kubernetes/client-node.
import { errorText } from '../util/text.js';
import { AgentError, ERROR_CODES } from '../errors.js';

/** Outcome of one API call; the `result` label of cri_netstatus_kube_writes_total. */
export const WRITE_RESULTS = [
  'success',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'invalid',
  'throttled',
  'server_error',
  'timeout',
  'unreachable',
  'error',
] as const;
export type WriteResult = (typeof WRITE_RESULTS)[number];
export type FailureResult = Exclude<WriteResult, 'success'>;

export class KubeError extends AgentError {
  constructor(
    message: string,
    readonly result: FailureResult,
    readonly status?: number,
  ) {
    super(ERROR_CODES.kubeApi, message);
  }
}

/** Failures only an operator can fix: retried slowly, so a fleet without RBAC does not hammer the API. */
export const PERMANENT_RESULTS: ReadonlySet<WriteResult> = new Set([
  'unauthorized',
  'forbidden',
  'not_found',
  'invalid',
]);

export function resultForStatus(status: number): FailureResult {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 422 || status === 400) return 'invalid';
  if (status === 429) return 'throttled';
  if (status >= 500) return 'server_error';
  return 'error';
}

export function asKubeError(error: unknown): KubeError {
  if (error instanceof KubeError) return error;
  return new KubeError(errorText(error), 'error');
}
