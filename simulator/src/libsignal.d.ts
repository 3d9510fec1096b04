// The one function of libsignal (npm, no bundled types) the simulator calls directly.
declare module 'libsignal/src/curve.js' {
  /** XEdDSA verification; true when the signature is valid (throws on malformed input). */
  export function verifySignature(pubKey: Uint8Array, msg: Uint8Array, sig: Uint8Array, isInit?: boolean): boolean;
}
