/**
 * The media server's TLS identity, generated at each start: a CA and a leaf
 * certificate for 127.0.0.1, ::1 and localhost signed by it (RSA 2048 keys
 * from node:crypto, X.509 built with node-forge). whatsmeow uploads and
 * downloads media over https:// with Go's default roots, so a client trusts
 * the simulator by adding the CA through a standard setting (Go on Linux:
 * SSL_CERT_FILE pointing at `caFile`).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';

export interface MediaTls {
  /** PEM of the CA certificate clients must trust. */
  caPem: string;
  /** A file holding caPem (removed by `dispose`). */
  caFile: string;
  /** PEM leaf certificate and key for the HTTPS server. */
  cert: string;
  key: string;
  dispose(): void;
}

function rsaKeys(): { privateKey: unknown; publicKey: unknown; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem);
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem };
}

const serial = (): string => '01' + randomBytes(8).toString('hex');

export function generateMediaTls(now = Date.now()): MediaTls {
  const ca = rsaKeys();
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = ca.publicKey;
  caCert.serialNumber = serial();
  caCert.validity.notBefore = new Date(now - 3600_000);
  caCert.validity.notAfter = new Date(now + 10 * 365 * 24 * 3600_000);
  const caName = [{ name: 'commonName', value: 'wgs WhatsApp simulator media CA' }];
  caCert.setSubject(caName);
  caCert.setIssuer(caName);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(ca.privateKey, forge.md.sha256.create());

  const leaf = rsaKeys();
  const leafCert = forge.pki.createCertificate();
  leafCert.publicKey = leaf.publicKey;
  leafCert.serialNumber = serial();
  leafCert.validity.notBefore = new Date(now - 3600_000);
  leafCert.validity.notAfter = new Date(now + 365 * 24 * 3600_000);
  leafCert.setSubject([{ name: 'commonName', value: '127.0.0.1' }]);
  leafCert.setIssuer(caName);
  leafCert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        { type: 7, ip: '127.0.0.1' },
        { type: 7, ip: '::1' },
        { type: 2, value: 'localhost' },
      ],
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  leafCert.sign(ca.privateKey, forge.md.sha256.create());

  const caPem = (forge.pki.certificateToPem(caCert) as string).replace(/\r\n/g, '\n');
  const dir = mkdtempSync(join(tmpdir(), 'wgs-simulator-'));
  const caFile = join(dir, 'media-ca.pem');
  writeFileSync(caFile, caPem, { mode: 0o644 });
  return {
    caPem,
    caFile,
    cert: (forge.pki.certificateToPem(leafCert) as string).replace(/\r\n/g, '\n'),
    key: leaf.pem,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
