/**
 * The server side of WhatsApp's Noise_XX_25519_AESGCM_SHA256 handshake and
 * the transport that follows it. The client (whatsmeow socket/noisehandshake.go,
 * Baileys Utils/noise-handler) mixes the same values in the same order; the
 * server is its mirror image.
 */
import { proto } from 'baileys';
import { gcmDecrypt, gcmEncrypt, hkdf, newKeyPair, sharedSecret, sha256, type KeyPair } from './crypto';

/** Exactly 32 bytes, so it is the initial hash itself. */
export const NOISE_PATTERN = Buffer.from('Noise_XX_25519_AESGCM_SHA256\0\0\0\0');

function iv(counter: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt32BE(counter >>> 0, 8);
  return out;
}

class SymmetricState {
  hash: Buffer = NOISE_PATTERN;
  salt: Buffer = NOISE_PATTERN;
  key: Buffer = NOISE_PATTERN;
  counter = 0;

  authenticate(data: Uint8Array): void {
    this.hash = sha256(this.hash, data);
  }

  mixIntoKey(secret: Uint8Array): void {
    const out = hkdf(secret, this.salt, '', 64);
    this.salt = out.subarray(0, 32);
    this.key = out.subarray(32);
    this.counter = 0;
  }

  encrypt(plaintext: Uint8Array): Buffer {
    const ct = gcmEncrypt(this.key, iv(this.counter++), plaintext, this.hash);
    this.authenticate(ct);
    return ct;
  }

  decrypt(ciphertext: Uint8Array): Buffer {
    const pt = gcmDecrypt(this.key, iv(this.counter++), ciphertext, this.hash);
    this.authenticate(ciphertext);
    return pt;
  }
}

/** Keys of an established session; the counters advance per frame. */
export class NoiseTransport {
  private readCounter = 0;
  private writeCounter = 0;
  constructor(
    private readonly readKey: Buffer,
    private readonly writeKey: Buffer,
  ) {}

  encrypt(plaintext: Uint8Array): Buffer {
    return gcmEncrypt(this.writeKey, iv(this.writeCounter++), plaintext);
  }

  /** Throws on a frame that does not authenticate. */
  decrypt(ciphertext: Uint8Array): Buffer {
    return gcmDecrypt(this.readKey, iv(this.readCounter++), ciphertext);
  }
}

export interface ServerIdentity {
  /** The static Noise key the leaf certificate names. */
  staticKey: KeyPair;
  /** Serialized CertChain (intermediate + leaf). */
  certChain: Uint8Array;
}

/** One handshake, driven by the two client messages. */
export class ServerHandshake {
  private readonly state = new SymmetricState();
  private readonly ephemeral = newKeyPair();
  private clientEphemeral: Buffer | undefined;

  constructor(
    private readonly server: ServerIdentity,
    prologue: Uint8Array,
  ) {
    this.state.authenticate(prologue);
  }

  /** Answers the ClientHello with the ServerHello (ephemeral, encrypted static, encrypted certificate chain). */
  onClientHello(frame: Uint8Array): Buffer {
    const msg = proto.HandshakeMessage.decode(frame);
    const eph = msg.clientHello?.ephemeral;
    if (!eph || eph.length !== 32) throw new Error('client hello without a 32-byte ephemeral key');
    this.clientEphemeral = Buffer.from(eph);
    this.state.authenticate(this.clientEphemeral);
    this.state.authenticate(this.ephemeral.public);
    this.state.mixIntoKey(sharedSecret(this.ephemeral.private, this.clientEphemeral));
    const staticCt = this.state.encrypt(this.server.staticKey.public);
    this.state.mixIntoKey(sharedSecret(this.server.staticKey.private, this.clientEphemeral));
    const certCt = this.state.encrypt(this.server.certChain);
    return Buffer.from(
      proto.HandshakeMessage.encode({ serverHello: { ephemeral: this.ephemeral.public, static: staticCt, payload: certCt } }).finish(),
    );
  }

  /** Reads the ClientFinish: the client's static key and its ClientPayload; returns the transport. */
  onClientFinish(frame: Uint8Array): { clientStatic: Buffer; payload: proto.ClientPayload; transport: NoiseTransport } {
    const msg = proto.HandshakeMessage.decode(frame);
    const staticCt = msg.clientFinish?.static;
    const payloadCt = msg.clientFinish?.payload;
    if (!staticCt || !payloadCt) throw new Error('client finish without static key or payload');
    const clientStatic = this.state.decrypt(staticCt);
    if (clientStatic.length !== 32) throw new Error('client static key is not 32 bytes');
    this.state.mixIntoKey(sharedSecret(this.ephemeral.private, clientStatic));
    const payload = proto.ClientPayload.decode(this.state.decrypt(payloadCt));
    const keys = hkdf(Buffer.alloc(0), this.state.salt, '', 64);
    // The client writes with the first key and reads with the second.
    return { clientStatic, payload, transport: new NoiseTransport(keys.subarray(0, 32), keys.subarray(32)) };
  }
}
