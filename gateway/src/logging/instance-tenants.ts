import { inArray } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances } from '../db/schema';

/** The two fields every log line about an instance carries. */
export interface InstanceLogFields {
  instanceId: number;
  /** The instance's user id; absent only for an instance this process has not read yet (see `fields`). */
  tenantId?: number;
}

/**
 * Which tenant (user) each instance belongs to, for log lines: learned where
 * this process reads instance rows anyway (a worker started, a worker's
 * hello, instances listed by the control loop), never by a query per log
 * line. An instance's user never changes, so an entry stays right until the
 * instance is deleted. One per runtime (instance ids are per database).
 */
export class InstanceTenants {
  private readonly tenants = new Map<number, number>();
  private readonly looking = new Set<number>();

  /** `db`: to look up, once and in the background, an instance a line is logged about before any row of it was read. */
  constructor(private readonly db?: Db) {}

  remember(instanceId: number, tenantId: number): void {
    this.tenants.set(instanceId, tenantId);
  }

  forget(instanceId: number): void {
    this.tenants.delete(instanceId);
  }

  tenantOf(instanceId: number): number | undefined {
    return this.tenants.get(instanceId);
  }

  /**
   * `{ instanceId, tenantId }` for a log line. An instance not known yet gets
   * `instanceId` alone this once, and one lookup is started so that the next
   * lines carry both.
   */
  fields(instanceId: number): InstanceLogFields {
    const tenantId = this.tenants.get(instanceId);
    if (tenantId !== undefined) return { instanceId, tenantId };
    this.lookUp(instanceId);
    return { instanceId };
  }

  private lookUp(instanceId: number): void {
    if (!this.db || this.looking.has(instanceId)) return;
    this.looking.add(instanceId);
    void this.db
      .select({ id: instances.id, userId: instances.userId })
      .from(instances)
      .where(inArray(instances.id, [instanceId]))
      .then((rows) => rows.forEach((r) => this.remember(r.id, r.userId)))
      .catch(() => {}) // the next line tries again
      .finally(() => this.looking.delete(instanceId));
  }
}
