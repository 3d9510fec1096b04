import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const ADMIN_SECRET_FILE = 'admin-api-secret';
export const WEBHOOK_KEY_FILE = 'webhook-secret-key';
export const BILLING_SECRET_FILE = 'billing-webhook-secret';

export interface SecretValue {
  value: string;
  /** 'env' when given in the environment, 'file' when read back, 'generated' on first start. */
  source: 'env' | 'file' | 'generated';
  path?: string;
}

/**
 * A secret from the environment, or else kept in DATA_DIR/<file>: read back,
 * or generated there (mode 0600) on first start. Concurrent first starts agree.
 */
export async function resolveSecretFile(dataDir: string, file: string, fromEnv: string | undefined, generate: () => string): Promise<SecretValue> {
  if (fromEnv) return { value: fromEnv, source: 'env' };
  const path = join(dataDir, file);
  const existing = await readFile(path, 'utf8').then(
    (s) => s.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw new Error(`cannot read ${path}: ${err.message}`);
    },
  );
  if (existing) return { value: existing, source: 'file', path };
  await mkdir(dataDir, { recursive: true });
  const value = generate();
  // 'wx' fails if another gateway created it meanwhile; then use theirs.
  try {
    await writeFile(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return resolveSecretFile(dataDir, file, undefined, generate);
    throw err;
  }
  return { value, source: 'generated', path };
}

/** The X-Admin-API-Secret: ADMIN_API_SECRET, or DATA_DIR/admin-api-secret. */
export function resolveAdminSecret(dataDir: string, fromEnv: string | undefined): Promise<SecretValue> {
  return resolveSecretFile(dataDir, ADMIN_SECRET_FILE, fromEnv, () => `wgsadm_${randomBytes(32).toString('base64url')}`);
}

/** The key that encrypts webhook signing secrets: WEBHOOK_SECRET_KEY, or DATA_DIR/webhook-secret-key. */
export function resolveWebhookKey(dataDir: string, fromEnv: string | undefined): Promise<SecretValue> {
  return resolveSecretFile(dataDir, WEBHOOK_KEY_FILE, fromEnv, () => randomBytes(32).toString('base64'));
}

/** The Standard Webhooks secret of billing webhooks: BILLING_WEBHOOK_SECRET, or DATA_DIR/billing-webhook-secret (`whsec_` + 24 random bytes). */
export function resolveBillingSecret(dataDir: string, fromEnv: string | undefined): Promise<SecretValue> {
  return resolveSecretFile(dataDir, BILLING_SECRET_FILE, fromEnv, () => `whsec_${randomBytes(24).toString('base64')}`);
}
