import type { Static } from '@sinclair/typebox';
import type { CommandFrame } from '../protocol/frames';
import { argsProblem } from './args';
import type { Logger } from './logger';
import { ProviderError, type Provider, type ProviderErrorDetails } from './providers/types';
import { ResultCache, type ResultFrameT } from './result-cache';

export type CommandFrameT = Static<typeof CommandFrame>;

/**
 * Runs the gateway's commands one at a time, in arrival order, and answers
 * each commandId once: a redelivered command gets the cached result. The
 * cache is consulted when the command's turn comes, so a copy that arrives
 * while the original still runs waits for it instead of running twice.
 */
export class CommandRunner {
  private tail: Promise<void>;
  private release: (() => void) | undefined;
  private closed = false;

  /**
   * With `held`, commands queue until open(): the worker takes them off the
   * socket before its provider has started (while it waits for the state
   * lock) and must not answer them "not ready".
   */
  constructor(
    private readonly provider: Provider,
    readonly results: ResultCache,
    private readonly log: Logger,
    opts: { held?: boolean } = {},
  ) {
    this.tail = opts.held ? new Promise<void>((resolve) => (this.release = resolve)) : Promise.resolve();
  }

  /** Lets queued and later commands run, in arrival order. */
  open(): void {
    this.release?.();
    this.release = undefined;
  }

  /**
   * Graceful stop: no command starts from now on (the gateway keeps them
   * queued and hands them to the next worker). Resolves once the command
   * already running, if any, has replied.
   */
  close(): Promise<void> {
    this.closed = true;
    this.open();
    return this.tail;
  }

  /** Queues the command; `reply` gets its result (fresh or cached). Resolves once replied. */
  run(command: CommandFrameT, reply: (result: ResultFrameT, cached: boolean) => void): Promise<void> {
    const next = this.tail.then(async () => {
      const cached = this.results.get(command.commandId);
      if (cached) {
        this.log.info({ commandId: command.commandId, command: command.name }, 'command redelivered; answering from cache');
        reply(cached, true);
        return;
      }
      if (this.closed) {
        this.log.info({ commandId: command.commandId, command: command.name }, 'worker stopping; command left to the next worker');
        return;
      }
      const result = await this.execute(command);
      this.results.set(result);
      reply(result, false);
    });
    // One failing reply must not stall every later command.
    this.tail = next.catch((err) => this.log.error({ err, commandId: command.commandId }, 'command reply failed'));
    return this.tail;
  }

  private async execute(command: CommandFrameT): Promise<ResultFrameT> {
    const { commandId, name } = command;
    const problem = argsProblem(name, command.args);
    if (problem) {
      this.log.warn({ commandId, command: name, problem }, 'command rejected: invalid arguments');
      return failure(commandId, 'invalid_args', `invalid arguments for ${name}: ${problem}`);
    }
    const started = performance.now();
    try {
      const data = await this.provider.execute(name, command.args);
      this.log.info({ commandId, command: name, ms: Math.round(performance.now() - started) }, 'command executed');
      return { type: 'result', commandId, ok: true, data };
    } catch (err) {
      if (err instanceof ProviderError) {
        this.log.info({ commandId, command: name, code: err.code, message: err.message }, 'command failed');
        return failure(commandId, err.code, err.message, err.details);
      }
      this.log.error({ err, commandId, command: name }, 'command crashed');
      const message = err instanceof Error ? err.message : String(err);
      return failure(commandId, 'internal', `${name} failed unexpectedly: ${message}`);
    }
  }
}

function failure(commandId: number, code: string, message: string, details?: ProviderErrorDetails): ResultFrameT {
  return { type: 'result', commandId, ok: false, error: { code, message, ...details } };
}
