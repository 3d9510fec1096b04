import type { Database } from '../db/client';
import type { Logger } from '../logging/logger';

/** What route modules need; built once in main.ts (or by a test). */
export interface AppDeps {
  database: Database;
  logger: Logger;
  adminSecret: string;
}
