import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const ADMIN_SECRET_FILE = 'admin-api-secret';

export interface AdminSecret {
  value: string;
  /** 'env' when ADMIN_API_SECRET was given, 'file' when read back, 'generated' on first start. */
  source: 'env' | 'file' | 'generated';
  path?: string;
}

/**
 * The admin secret comes from ADMIN_API_SECRET; when unset it is read from
 * DATA_DIR/admin-api-secret, or generated there (mode 0600) on first start.
 */
export async function resolveAdminSecret(dataDir: string, fromEnv: string | undefined): Promise<AdminSecret> {
  if (fromEnv) return { value: fromEnv, source: 'env' };
  const path = join(dataDir, ADMIN_SECRET_FILE);
  const existing = await readFile(path, 'utf8').then(
    (s) => s.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw new Error(`cannot read admin secret ${path}: ${err.message}`);
    },
  );
  if (existing) return { value: existing, source: 'file', path };
  await mkdir(dataDir, { recursive: true });
  const value = `wgsadm_${randomBytes(32).toString('base64url')}`;
  // 'wx' fails if another gateway created it meanwhile; then use theirs.
  try {
    await writeFile(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return resolveAdminSecret(dataDir, undefined);
    throw err;
  }
  return { value, source: 'generated', path };
}
