import { EventEmitter } from 'node:events';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { commands, type Command } from '../db/schema';
import type { CommandName } from '../../../workers/protocol/frames';

export interface CommandOutcome {
  ok: boolean;
  data?: Record<string, unknown>;
  error?: { code: string; message: string };
}

/** Commands that wait for the WhatsApp session to be connected before they go to the worker. */
export const NEEDS_CONNECTION: ReadonlySet<string> = new Set<CommandName>(['send', 'sandbox.inbound']);

/**
 * The durable command queue in Postgres. A command is `pending` until its
 * worker answers; in-process waiters are woken by `complete`.
 */
export class CommandQueue {
  private readonly results = new EventEmitter();

  constructor(private readonly db: Db) {
    this.results.setMaxListeners(0);
  }

  async enqueue(instanceId: number, name: CommandName, args: Record<string, unknown>, tx: Pick<Db, 'insert'> = this.db): Promise<Command> {
    const [row] = await tx.insert(commands).values({ instanceId, name, args }).returning();
    return row!;
  }

  /** Pending commands of an instance in order; without those needing a connection unless `connected`. */
  async pending(instanceId: number, connected: boolean): Promise<Command[]> {
    const rows = await this.db
      .select()
      .from(commands)
      .where(and(eq(commands.instanceId, instanceId), eq(commands.status, 'pending')))
      .orderBy(asc(commands.id));
    return connected ? rows : rows.filter((c) => !NEEDS_CONNECTION.has(c.name));
  }

  async markSent(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .update(commands)
      .set({ sentAt: sql`now()`, attempts: sql`${commands.attempts} + 1` })
      .where(sql`${commands.id} in ${ids}`);
  }

  /**
   * Records a worker's answer once (a repeated result is ignored) and returns
   * the command when this call completed it. Waiters are woken by `notify`,
   * once the caller has applied the result's effects.
   */
  async complete(instanceId: number, commandId: number, outcome: CommandOutcome): Promise<Command | null> {
    const [row] = await this.db
      .update(commands)
      .set({
        status: outcome.ok ? 'done' : 'failed',
        result: outcome.data ?? null,
        errorCode: outcome.error?.code ?? null,
        errorMessage: outcome.error?.message ?? null,
        completedAt: sql`now()`,
      })
      .where(and(eq(commands.id, commandId), eq(commands.instanceId, instanceId), eq(commands.status, 'pending')))
      .returning();
    return row ?? null;
  }

  /** Wakes whoever waits for this command's outcome. */
  notify(commandId: number, outcome: CommandOutcome): void {
    this.results.emit(String(commandId), outcome);
  }

  /** Fails every pending command of an instance matching `names` (e.g. sends after a logout); the caller notifies. */
  async failPending(instanceId: number, names: string[], error: { code: string; message: string }): Promise<Command[]> {
    const rows = await this.db
      .update(commands)
      .set({ status: 'failed', errorCode: error.code, errorMessage: error.message, completedAt: sql`now()` })
      .where(and(eq(commands.instanceId, instanceId), eq(commands.status, 'pending'), sql`${commands.name} in ${names}`))
      .returning();
    return rows;
  }

  /** The outcome when it arrives within the timeout, else null (the command stays queued). */
  waitFor(commandId: number, timeoutMs: number): Promise<CommandOutcome | null> {
    return new Promise((resolve) => {
      const key = String(commandId);
      const onResult = (outcome: CommandOutcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        this.results.off(key, onResult);
        resolve(null);
      }, timeoutMs);
      this.results.once(key, onResult);
    });
  }
}
