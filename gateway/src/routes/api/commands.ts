/**
 * Running a worker command on behalf of an API call: queued in Postgres,
 * sent to the worker, answered with its result, and the worker's refusals
 * mapped to HTTP statuses.
 */
import type { CommandOutcome } from '../../commands/queue';
import { ApiError } from '../../http/errors';
import type { InstanceRuntime } from '../../instances/runtime';
import type { CommandName } from '../../../../workers/protocol/frames';

/**
 * HTTP statuses of the engines' refusals (workers/src/providers/waba/errors.ts
 * maps Meta's codes onto these). Anything else a worker reports is a 502.
 */
export const PROVIDER_ERROR_STATUS: Record<string, number> = {
  unsupported_command: 422,
  template_required: 422,
  template_error: 422,
  undeliverable: 422,
  ecosystem_limited: 422,
  provider_rejected: 422,
  media_failed: 422,
  spam_rate_limited: 429,
  rate_limited: 429,
  account_restricted: 403,
  provider_auth_failed: 503,
  provider_error: 502,
  provider_unreachable: 504,
};

/** How long an API call waits for its command's result before answering from the queue. */
export const COMMAND_TIMEOUT_MS = 10_000;

export function commandRunner(runtime: InstanceRuntime) {
  const notConnected = () => new ApiError(503, 'not_connected', 'Client not connected');
  const workerUnavailable = (id: number) => new ApiError(503, 'worker_unavailable', `the worker of instance ${id} is not connected; retry shortly`);

  /** A worker's refusal as an HTTP error; the engine's own code (Meta's) and a retry hint are kept. */
  function commandError(outcome: CommandOutcome): ApiError {
    const { code, message, providerCode, retryAfter } = outcome.error ?? { code: 'worker_error', message: 'the worker could not run the command' };
    if (code === 'not_connected') return notConnected();
    if (code === 'invalid_args') return new ApiError(400, 'validation_failed', message);
    if (code === 'already_connected' || code === 'not_ready') return new ApiError(409, code, message);
    return new ApiError(PROVIDER_ERROR_STATUS[code] ?? 502, code, message, { providerCode, retryAfter });
  }

  /** Runs an interactive command that needs the worker now; 503 when it is away. */
  async function runNow(instanceId: number, name: Exclude<CommandName, 'send'>, args: Record<string, unknown>) {
    // Connected to this replica or another one: the command reaches it through the database (runtime.route).
    if (!(await runtime.workerConnected(instanceId))) throw workerUnavailable(instanceId);
    const command = await runtime.queue.enqueue(instanceId, name, args);
    const outcome = runtime.queue.waitFor(command.id, COMMAND_TIMEOUT_MS);
    await runtime.dispatch(command);
    const result = await outcome;
    if (!result) throw new ApiError(504, 'worker_timeout', `the worker of instance ${instanceId} did not answer within ${COMMAND_TIMEOUT_MS / 1000} s`);
    if (!result.ok) throw commandError(result);
    return result.data ?? {};
  }

  return { runNow, commandError, notConnected };
}
