import type { Static } from '@sinclair/typebox';
import type { ResultFrame } from '../protocol/frames';

export type ResultFrameT = Static<typeof ResultFrame>;

/** Far more than the gateway redelivers at once; bounds memory on long-lived workers. */
export const MAX_CACHED_RESULTS = 10_000;

/**
 * The results this worker gave, by commandId, so a redelivered command is
 * answered again instead of executed twice. Bounded: the oldest is dropped.
 * Results not yet sent on a welcomed connection are remembered as unsent
 * and flushed after the next welcome.
 */
export class ResultCache {
  private readonly results = new Map<number, ResultFrameT>();
  private readonly unsentIds = new Set<number>();

  constructor(private readonly max = MAX_CACHED_RESULTS) {}

  get(commandId: number): ResultFrameT | undefined {
    return this.results.get(commandId);
  }

  set(result: ResultFrameT): void {
    this.results.delete(result.commandId);
    this.results.set(result.commandId, result);
    while (this.results.size > this.max) {
      const oldest = this.results.keys().next().value!;
      this.results.delete(oldest);
      this.unsentIds.delete(oldest);
    }
  }

  markUnsent(commandId: number): void {
    if (this.results.has(commandId)) this.unsentIds.add(commandId);
  }

  /** The cached results never sent, oldest first; they count as sent afterwards. */
  takeUnsent(): ResultFrameT[] {
    const out: ResultFrameT[] = [];
    for (const [id, result] of this.results) if (this.unsentIds.has(id)) out.push(result);
    this.unsentIds.clear();
    return out;
  }

  get size(): number {
    return this.results.size;
  }
}
