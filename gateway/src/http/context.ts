import type { Database } from '../db/client';
import type { Logger } from '../logging/logger';
import type { InstanceRuntime } from '../instances/runtime';

/** What route modules need; built once in main.ts (or by a test). */
export interface AppDeps {
  database: Database;
  logger: Logger;
  adminSecret: string;
  runtime: InstanceRuntime;
}
