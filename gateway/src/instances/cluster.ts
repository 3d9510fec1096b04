/**
 * What gateway replicas tell each other, through the database only
 * (LISTEN/NOTIFY; no replica-to-replica RPC). One LISTEN connection per
 * replica (postgres.js keeps one for all channels and listens again after a
 * reconnect); every signal is also caught another way when a notification is
 * lost, noted per channel:
 *
 * | channel | payload | on receipt | when lost |
 * | --- | --- | --- | --- |
 * | `wgs_pacing` | instance id | the pacer sends due commands of workers connected here (commands routed from other replicas, paced sends) | the pacer looks every 5 s |
 * | `wgs_results` | command ids | waiters here read those commands' outcomes | a waiter reads its row at its deadline |
 * | `wgs_workers` | instance id | a worker of the instance started anew elsewhere: an older socket or process-engine child here goes | the hello's token check; `reconcileLocal` |
 * | `wgs_moves` | `+id` / `-id` | a move began or ended on another replica: commands here wait | the mark lapses after 90 s |
 * | `wgs_events` | instance id | status, state and QR changes wake `waitUntil` here | `waitUntil` reads every second |
 *
 * (`wgs_pacing` is the pacer's own LISTEN, pacing/dispatcher.ts.)
 */
import type { Sql } from 'postgres';
import type { Logger } from '../logging/logger';
import { RESULTS_CHANNEL } from '../commands/queue';
import type { InstanceRuntime } from './runtime';
import { WORKERS_CHANNEL } from './runtime';

export const MOVES_CHANNEL = 'wgs_moves';
/** The event log's channel (migration 0018's trigger): every committed event, by instance id. */
const EVENTS_CHANNEL = 'wgs_events';

export class ClusterSignals {
  private readonly unlisten: (() => Promise<void>)[] = [];

  constructor(
    private readonly sql: Sql,
    private readonly runtime: InstanceRuntime,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const on = async (channel: string, fn: (payload: string) => unknown) => {
      const listener = await this.sql.listen(channel, (payload) => {
        try {
          void Promise.resolve(fn(payload)).catch((err) => this.logger.warn({ err, channel }, 'cluster signal failed'));
        } catch (err) {
          this.logger.warn({ err, channel }, 'cluster signal failed');
        }
      });
      this.unlisten.push(() => listener.unlisten());
    };
    const ids = (payload: string) => payload.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
    await on(RESULTS_CHANNEL, (p) => this.runtime.queue.wake(ids(p)));
    await on(WORKERS_CHANNEL, (p) => Promise.all(ids(p).map((id) => this.runtime.letGo(id))));
    await on(MOVES_CHANNEL, (p) => {
      const id = Number(p.slice(1));
      if (Number.isInteger(id) && !this.runtime.sessions.isMovingHere(id)) this.runtime.sessions.remoteMove(id, p.startsWith('+'));
    });
    await on(EVENTS_CHANNEL, (p) => {
      for (const id of ids(p)) this.runtime.sessions.changed(id);
    });
    this.runtime.queue.announceResults = true;
    this.runtime.announceMoves = true;
  }

  async stop(): Promise<void> {
    this.runtime.queue.announceResults = false;
    for (const fn of this.unlisten.splice(0)) await fn().catch(() => {});
  }
}
