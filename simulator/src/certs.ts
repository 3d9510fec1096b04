/**
 * The server's certificate chain, generated at start: a root key pair (the
 * public half is what clients are told to trust), an intermediate
 * certificate signed by the root, and a leaf certificate over the server's
 * static Noise key signed by the intermediate — the CertChain protobuf that
 * whatsmeow's verifyServerCert and Baileys' noise handler check.
 */
import { proto } from 'baileys';
import { newKeyPair, sign, type KeyPair } from './crypto';
import type { ServerIdentity } from './noise';

/** whatsmeow requires the intermediate's issuer serial to be 0 (WACertIssuerSerial). */
const ROOT_SERIAL = 0;
const INTERMEDIATE_SERIAL = 1;
const LEAF_SERIAL = 2;

export interface Certificates extends ServerIdentity {
  root: KeyPair;
}

export function generateCertificates(now = Date.now()): Certificates {
  const root = newKeyPair();
  const intermediate = newKeyPair();
  const staticKey = newKeyPair();
  const notBefore = Math.floor(now / 1000) - 3600;
  const notAfter = notBefore + 10 * 365 * 24 * 3600;
  const details = (serial: number, issuerSerial: number, key: Buffer) =>
    proto.CertChain.NoiseCertificate.Details.encode({ serial, issuerSerial, key, notBefore, notAfter }).finish();
  const intermediateDetails = details(INTERMEDIATE_SERIAL, ROOT_SERIAL, intermediate.public);
  const leafDetails = details(LEAF_SERIAL, INTERMEDIATE_SERIAL, staticKey.public);
  const certChain = proto.CertChain.encode({
    intermediate: { details: intermediateDetails, signature: sign(root.private, intermediateDetails) },
    leaf: { details: leafDetails, signature: sign(intermediate.private, leafDetails) },
  }).finish();
  return { root, staticKey, certChain };
}
