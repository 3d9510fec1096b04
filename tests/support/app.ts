/** An in-process app on its own real test database, and a small request helper. */
import { createApp } from '../../gateway/src/http/app';
import { createLogger } from '../../gateway/src/logging/logger';
import { createTestDatabase, type TestDatabase } from './postgres';

export const ADMIN_SECRET = 'test-admin-secret';

export interface Call {
  body?: unknown;
  /** Raw body text, sent as JSON content type (for malformed JSON). */
  raw?: string;
  admin?: string | false;
  key?: string;
  headers?: Record<string, string>;
}

export interface TestApp {
  db: TestDatabase;
  app: ReturnType<typeof createApp>;
  call(method: string, path: string, opts?: Call): Promise<{ status: number; body: any; headers: Headers }>;
  /** Creates a user through the admin API; returns its id, email and key. */
  createUser(email?: string): Promise<{ id: number; email: string; apiKey: string; keyId: number }>;
  close(): Promise<void>;
}

let counter = 0;

export async function createTestApp(): Promise<TestApp> {
  const db = await createTestDatabase();
  const app = createApp({ database: db.database, logger: createLogger('silent'), adminSecret: ADMIN_SECRET });

  const call: TestApp['call'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.admin !== false && path.startsWith('/admin')) headers['x-admin-api-secret'] = opts.admin ?? ADMIN_SECRET;
    if (opts.key) headers.authorization = `Bearer ${opts.key}`;
    let body: string | undefined;
    if (opts.raw !== undefined || opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = opts.raw ?? JSON.stringify(opts.body);
    }
    const res = await app.handle(new Request(`http://wgs.test${path}`, { method, headers, body }));
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };

  return {
    db,
    app,
    call,
    async createUser(email = `user${++counter}-${Date.now()}@example.com`) {
      const res = await call('POST', '/admin/users', { body: { email } });
      if (res.status !== 201) throw new Error(`creating user failed: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    close: () => db.drop(),
  };
}
