/**
 * Test support: a throwaway OpenSSH server on 127.0.0.1 that lets root in
 * with one generated key, for Docker nodes reached over ssh:// (the gateway
 * runs `docker system dial-stdio` there, so it reaches the local daemon).
 * Needs Debian's openssh-server (.ci/run installs it); without it the tests
 * that use it are skipped, unless REQUIRE_DOCKER=1.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { freePort } from '../../gateway/src/lib/net';
import { until } from './poll';

const SSHD = '/usr/sbin/sshd';

export function sshdAvailable(): boolean {
  if (existsSync(SSHD)) return true;
  if (process.env.REQUIRE_DOCKER === '1') throw new Error(`REQUIRE_DOCKER=1 but ${SSHD} is missing (.ci/run installs openssh-server)`);
  console.warn(`skipping ssh:// node tests: ${SSHD} is missing (apt-get install openssh-server)`);
  return false;
}

export interface TestSshd {
  port: number;
  /** The client's private key (OpenSSH format) that root accepts. */
  clientKey: string;
  /** The host key's fingerprint as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  /** Another key, with passphrase "secret", that root does not accept. */
  strangerKey: string;
  close(): void;
}

function run(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`${cmd[0]} failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A fresh ed25519 key pair (OpenSSH format), optionally with a passphrase. */
export function sshKeypair(passphrase = ''): { privateKey: string; publicKey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wgs-sshkey-'));
  try {
    run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', passphrase, '-C', 'wgs-test', '-f', join(dir, 'k')]);
    return { privateKey: readFileSync(join(dir, 'k'), 'utf8'), publicKey: readFileSync(join(dir, 'k.pub'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startSshd(): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'wgs-sshd-'));
  const keygen = (name: string, passphrase = '') => run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', join(dir, name)]);
  keygen('host');
  keygen('client');
  keygen('stranger', 'secret');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
    ].join('\n') + '\n',
  );
  mkdirSync('/run/sshd', { recursive: true }); // privilege separation directory
  const proc: Subprocess = Bun.spawn([SSHD, '-D', '-e', '-f', join(dir, 'sshd_config')], { stdout: 'ignore', stderr: 'pipe' });
  await until('sshd listening', async () => {
    if (proc.exitCode !== null) throw new Error(`sshd exited with ${proc.exitCode}`);
    return Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
      .then((s) => (s.end(), true))
      .catch(() => false);
  });
  const fingerprint = run(['ssh-keygen', '-l', '-E', 'sha256', '-f', join(dir, 'host.pub')]).split(' ')[1]!;
  return {
    port,
    clientKey: readFileSync(join(dir, 'client'), 'utf8'),
    strangerKey: readFileSync(join(dir, 'stranger'), 'utf8'),
    hostKeyFingerprint: fingerprint,
    close() {
      proc.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
