import { EventEmitter } from 'node:events';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { commands, messages, type Command } from '../db/schema';
import type { CommandName, SendArgs } from '../../../workers/protocol/frames';

export interface CommandOutcome {
  ok: boolean;
  data?: Record<string, unknown>;
  error?: { code: string; message: string; providerCode?: number; retryAfter?: number };
}

/** Commands that wait for the WhatsApp session to be connected before they go to the worker. */
export const NEEDS_CONNECTION: ReadonlySet<string> = new Set<CommandName>(['send', 'sandbox.inbound', 'presence']);

/** NOTIFY channel of completed commands: the payload is their ids, comma-separated (gateway replicas). */
export const RESULTS_CHANNEL = 'wgs_results';
/** Command ids per notification: well under Postgres' 8000-byte payload limit. */
const IDS_PER_NOTIFY = 500;

/**
 * The durable command queue in Postgres. A command is `pending` until its
 * worker answers; waiters are woken by `notify`: in this process directly,
 * on other replicas through NOTIFY `wgs_results` (the waiter then reads the
 * outcome from the row, `wake`).
 */
export class CommandQueue {
  private readonly results = new EventEmitter();
  /** Completed commands nobody here waits for: announced to the other replicas in one NOTIFY. */
  private announce: number[] = [];
  private announcing = false;
  /** Whether other replicas may wait (the cluster signals run); a lone test app skips the NOTIFY. */
  announceResults = false;

  constructor(private readonly db: Db) {
    this.results.setMaxListeners(0);
  }

  async enqueue(instanceId: number, name: CommandName, args: Record<string, unknown>, tx: Pick<Db, 'insert'> = this.db): Promise<Command> {
    const [row] = await tx.insert(commands).values({ instanceId, name, args }).returning();
    return row!;
  }

  /**
   * A `send` command and its message row in one statement (one round trip,
   * atomic): the message refers to its command. A repeated Idempotency-Key
   * fails with a unique violation and writes neither.
   */
  async enqueueSend(
    instanceId: number,
    args: SendArgs,
    idempotencyKey: string | null,
    /** What the messages table keeps of it: the text, caption or emoji. */
    text: string | null,
    /** A paced send: not to the worker before this time (pacing/reserve.ts), in the caller's transaction. */
    paced?: { notBefore: Date; tx: Pick<Db, 'execute'>; dispatchNow?: boolean },
  ): Promise<Command> {
    const notBefore = paced ? paced.notBefore.toISOString() : null;
    const rows = await (paced?.tx ?? this.db).execute<Record<string, unknown>>(sql`
      with command as (
        insert into ${commands} (instance_id, name, args, not_before, sent_at)
        values (${instanceId}, 'send', ${JSON.stringify(args)}::jsonb, ${notBefore}::timestamptz, case when ${paced?.dispatchNow ?? false} then ${notBefore}::timestamptz end)
        returning *
      ), message as (
        insert into ${messages} (id, instance_id, command_id, "to", type, text, idempotency_key)
        select ${args.messageId}, ${instanceId}, command.id, ${args.to}, ${args.type}, ${text}, ${idempotencyKey} from command
      )
      select id, instance_id, name, args, status, created_at from command`);
    const row = rows[0]!;
    return {
      id: Number(row.id),
      instanceId: Number(row.instance_id),
      name: String(row.name),
      args: row.args as Record<string, unknown>,
      status: 'pending',
      result: null,
      errorCode: null,
      errorMessage: null,
      attempts: 0,
      createdAt: new Date(String(row.created_at)),
      sentAt: null,
      completedAt: null,
      notBefore: paced ? paced.notBefore : null,
    };
  }

  /**
   * Pending commands of an instance in order; without those needing a
   * connection unless `connected`, and without paced ones not yet due
   * (`not_before` later than now: the pacer sends them when due).
   */
  async pending(instanceId: number, connected: boolean): Promise<Command[]> {
    const rows = await this.db
      .select()
      .from(commands)
      .where(
        and(
          eq(commands.instanceId, instanceId),
          eq(commands.status, 'pending'),
          sql`(${commands.notBefore} is null or ${commands.notBefore} <= now())`,
        ),
      )
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
   * Records workers' answers, each once (a repeated result is ignored), in
   * one statement; returns the commands this call completed. Waiters are
   * woken by `notify`, once the caller has applied the results' effects.
   */
  async completeMany(
    instanceId: number,
    outcomes: { commandId: number; outcome: CommandOutcome }[],
    /** The caller's transaction, when the results' effects must commit with them (sandbox routing). */
    tx: Pick<Db, 'execute'> = this.db,
  ): Promise<Pick<Command, 'id' | 'instanceId' | 'name' | 'args'>[]> {
    if (outcomes.length === 0) return [];
    const values = outcomes.map(
      ({ commandId, outcome }) =>
        sql`(${commandId}::int, ${outcome.ok ? 'done' : 'failed'}, ${resultColumn(outcome)}::jsonb, ${outcome.error?.code ?? null}, ${outcome.error?.message ?? null})`,
    );
    const rows = await tx.execute<Record<string, unknown>>(sql`
      update ${commands} as c set
        status = v.status::command_status, result = v.result, error_code = v.error_code,
        error_message = v.error_message, completed_at = now()
      from (values ${sql.join(values, sql`, `)}) as v(id, status, result, error_code, error_message)
      where c.id = v.id and c.instance_id = ${instanceId} and c.status = 'pending'
      returning c.id, c.instance_id, c.name, c.args`);
    return rows.map((r) => ({
      id: Number(r.id),
      instanceId: Number(r.instance_id),
      name: String(r.name),
      args: r.args as Record<string, unknown>,
    }));
  }

  /** Wakes whoever waits for this command's outcome: here at once, on other replicas by NOTIFY. */
  notify(commandId: number, outcome: CommandOutcome): void {
    if (this.results.emit(String(commandId), outcome) || !this.announceResults) return;
    this.announce.push(commandId);
    if (!this.announcing) {
      this.announcing = true;
      queueMicrotask(() => void this.flushAnnouncements());
    }
  }

  private async flushAnnouncements(): Promise<void> {
    const ids = this.announce;
    this.announce = [];
    this.announcing = false;
    for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
      // Lost (the database away): a remote waiter reads the row at its deadline instead.
      await this.db.execute(sql`select pg_notify(${RESULTS_CHANNEL}, ${ids.slice(i, i + IDS_PER_NOTIFY).join(',')})`).catch(() => {});
    }
  }

  /** Another replica completed these commands: waiters here read their outcomes from the rows. */
  async wake(ids: number[]): Promise<void> {
    const waited = ids.filter((id) => this.results.listenerCount(String(id)) > 0);
    if (waited.length === 0) return;
    for (const [id, outcome] of await this.outcomes(waited)) this.results.emit(String(id), outcome);
  }

  /** Outcomes of finished commands, from their rows. */
  private async outcomes(ids: number[]): Promise<Map<number, CommandOutcome>> {
    const rows = await this.db
      .select({ id: commands.id, status: commands.status, result: commands.result, errorCode: commands.errorCode, errorMessage: commands.errorMessage })
      .from(commands)
      .where(sql`${commands.id} in ${ids} and ${commands.status} <> 'pending'`);
    return new Map(rows.map((r) => [r.id, outcomeOf(r)]));
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

  /**
   * The outcome when it arrives within the timeout, else null (the command
   * stays queued). At the deadline the row is read once: a result recorded by
   * another replica whose notification was lost still counts.
   */
  waitFor(commandId: number, timeoutMs: number): Promise<CommandOutcome | null> {
    return new Promise((resolve) => {
      const key = String(commandId);
      const onResult = (outcome: CommandOutcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        this.results.off(key, onResult);
        this.outcomes([commandId]).then(
          (found) => resolve(found.get(commandId) ?? null),
          () => resolve(null),
        );
      }, timeoutMs);
      this.results.once(key, onResult);
    });
  }
}

/** What a command row keeps of an outcome: the data, or a refusal's extras (providerCode, retryAfter). */
function resultColumn(outcome: CommandOutcome): string | null {
  if (outcome.ok) return outcome.data ? JSON.stringify(outcome.data) : null;
  const { providerCode, retryAfter } = outcome.error ?? {};
  if (providerCode === undefined && retryAfter === undefined) return outcome.data ? JSON.stringify(outcome.data) : null;
  return JSON.stringify({ ...outcome.data, ...(providerCode !== undefined && { providerCode }), ...(retryAfter !== undefined && { retryAfter }) });
}

function outcomeOf(row: Pick<Command, 'status' | 'result' | 'errorCode' | 'errorMessage'>): CommandOutcome {
  if (row.status === 'done') return { ok: true, ...(row.result && { data: row.result }) };
  const extras = row.result ?? {};
  return {
    ok: false,
    // A send refused by a rate limit and queued again (pacing/requeue.ts): where it went.
    ...(extras.requeued !== undefined && { data: { requeued: extras.requeued } }),
    error: {
      code: row.errorCode ?? 'worker_error',
      message: row.errorMessage ?? 'the worker could not run the command',
      ...(typeof extras.providerCode === 'number' && { providerCode: extras.providerCode }),
      ...(typeof extras.retryAfter === 'number' && { retryAfter: extras.retryAfter }),
    },
  };
}
