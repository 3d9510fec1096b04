// The parts of libsignal (npm, no bundled types for these) the simulator calls directly.
declare module 'libsignal/src/curve.js' {
  /** XEdDSA verification; true when the signature is valid (throws on malformed input). */
  export function verifySignature(pubKey: Uint8Array, msg: Uint8Array, sig: Uint8Array, isInit?: boolean): boolean;
  /** A Curve25519 key pair; pubKey has the 0x05 type prefix (33 bytes). */
  export function generateKeyPair(): { pubKey: Buffer; privKey: Buffer };
  /** XEdDSA signature (64 bytes). */
  export function calculateSignature(privKey: Uint8Array, message: Uint8Array): Buffer;
}
