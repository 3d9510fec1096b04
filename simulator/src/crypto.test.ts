/**
 * The pieces whatsmeow checks, checked here with independent verification
 * (libsignal's XEdDSA): the certificate chain, the ADV device identity and
 * the pairing-code exchange, run from both ends.
 */
import { describe, expect, test } from 'bun:test';
import { proto } from 'baileys';
import { generateCertificates } from './certs';
import { ctr, gcmEncrypt, hkdf, hmacSha256, linkCodeKey, newKeyPair, randomBytes, sharedSecret, sign, verify } from './crypto';
import { ADV_ACCOUNT_SIGNATURE_PREFIX, ADV_DEVICE_SIGNATURE_PREFIX, buildDeviceIdentity, companionFinish, parseLinkCode, parseQrText, primaryHello, verifyDeviceSign, wrapWithCode } from './phone';

describe('signatures', () => {
  test('verify accepts the signer and rejects another key or a changed message', () => {
    const kp = newKeyPair();
    const msg = Buffer.from('message');
    const sig = sign(kp.private, msg);
    expect(verify(kp.public, msg, sig)).toBe(true);
    expect(verify(newKeyPair().public, msg, sig)).toBe(false);
    expect(verify(kp.public, Buffer.from('messagE'), sig)).toBe(false);
    expect(verify(kp.public, msg, sig.subarray(1))).toBe(false);
  });
});

describe('certificate chain', () => {
  test('root → intermediate (issuer serial 0) → leaf over the static Noise key, as verifyServerCert checks', () => {
    const certs = generateCertificates();
    const chain = proto.CertChain.decode(certs.certChain);
    const inter = proto.CertChain.NoiseCertificate.Details.decode(chain.intermediate!.details!);
    const leaf = proto.CertChain.NoiseCertificate.Details.decode(chain.leaf!.details!);
    expect(verify(certs.root.public, chain.intermediate!.details!, chain.intermediate!.signature!)).toBe(true);
    expect(verify(newKeyPair().public, chain.intermediate!.details!, chain.intermediate!.signature!)).toBe(false);
    expect(inter.issuerSerial).toBe(0);
    expect(Buffer.from(inter.key!).length).toBe(32);
    expect(verify(Buffer.from(inter.key!), chain.leaf!.details!, chain.leaf!.signature!)).toBe(true);
    expect(leaf.issuerSerial).toBe(inter.serial!);
    expect(Buffer.from(leaf.key!).equals(certs.staticKey.public)).toBe(true);
  });
});

describe('ADV device identity', () => {
  test('HMAC keyed by the adv secret, account signature over 6,0 ‖ details ‖ companion identity; the companion countersigns', () => {
    const account = newKeyPair();
    const companion = newKeyPair();
    const advSecret = randomBytes(32);
    const { container, details } = buildDeviceIdentity({ account, rawId: 7, keyIndex: 3, companionIdentity: companion.public, advSecret });
    const hmac = proto.ADVSignedDeviceIdentityHMAC.decode(container);
    expect(Buffer.from(hmac.hmac!).equals(hmacSha256(advSecret, hmac.details!))).toBe(true);
    const signed = proto.ADVSignedDeviceIdentity.decode(hmac.details!);
    expect(Buffer.from(signed.accountSignatureKey!).equals(account.public)).toBe(true);
    expect(verify(account.public, Buffer.concat([ADV_ACCOUNT_SIGNATURE_PREFIX, signed.details!, companion.public]), signed.accountSignature!)).toBe(true);
    expect(proto.ADVDeviceIdentity.decode(details)).toMatchObject({ rawId: 7, keyIndex: 3 });
    // what whatsmeow sends back in pair-device-sign: the account key removed, its device signature added
    const deviceSignature = sign(companion.private, Buffer.concat([ADV_DEVICE_SIGNATURE_PREFIX, details, companion.public, account.public]));
    const back = Buffer.from(proto.ADVSignedDeviceIdentity.encode({ details, accountSignature: signed.accountSignature, deviceSignature }).finish());
    expect(verifyDeviceSign(back, details, companion.public, account.public)).toBe(true);
    const forged = Buffer.from(proto.ADVSignedDeviceIdentity.encode({ details, deviceSignature: sign(newKeyPair().private, Buffer.from('x')) }).finish());
    expect(verifyDeviceSign(forged, details, companion.public, account.public)).toBe(false);
  });
});

describe('pairing code', () => {
  test('the phone and the companion (pair-code.go, replayed here) derive the same adv secret; a wrong code fails', () => {
    const code = 'ABCD2345';
    const account = newKeyPair();
    const companionIdentity = newKeyPair();
    const companionEphemeral = newKeyPair();
    const hello = primaryHello(code, wrapWithCode(code, companionEphemeral.public));
    // companion side: unwrap the phone's ephemeral key with the code, wrap the key bundle
    const w = hello.wrappedPrimaryEphemeral;
    const primaryEphemeral = ctr(linkCodeKey(code, w.subarray(0, 32)), w.subarray(32, 48), w.subarray(48, 80));
    const ephemeralShared = sharedSecret(companionEphemeral.private, primaryEphemeral);
    const advRandom = randomBytes(32);
    const salt = randomBytes(32);
    const nonce = randomBytes(12);
    const bundleKey = hkdf(ephemeralShared, salt, 'link_code_pairing_key_bundle_encryption_key', 32);
    const bundle = gcmEncrypt(bundleKey, nonce, Buffer.concat([companionIdentity.public, account.public, advRandom]));
    const expectedAdv = hkdf(Buffer.concat([ephemeralShared, sharedSecret(companionIdentity.private, account.public), advRandom]), undefined, 'adv_secret', 32);
    const out = companionFinish(hello, account, Buffer.concat([salt, nonce, bundle]));
    expect(out.advSecret.equals(expectedAdv)).toBe(true);
    expect(out.companionIdentity.equals(companionIdentity.public)).toBe(true);
    const wrongHello = primaryHello('ZZZZ9999', wrapWithCode(code, companionEphemeral.public));
    expect(() => companionFinish(wrongHello, account, Buffer.concat([salt, nonce, bundle]))).toThrow();
  });

  test('codes and QR texts are parsed strictly', () => {
    expect(parseLinkCode('abcd-2345')).toBe('ABCD2345');
    expect(parseLinkCode('ABCD-234O')).toBeUndefined(); // O is not in the alphabet
    expect(parseLinkCode(12345678)).toBeUndefined();
    const k = Buffer.alloc(32, 3).toString('base64');
    expect(parseQrText(`2@x,${k},${k},${k}`)?.ref).toBe('2@x');
    expect(parseQrText(`https://wa.me/settings/linked_devices#2@x,${k},${k},${k},1`)?.ref).toBe('2@x');
    expect(parseQrText(`2@x,${k},${k},${k},1`)).toBeUndefined();
    expect(parseQrText(`2@x,${k},${k}`)).toBeUndefined();
    expect(parseQrText(`2@x,${k},${k},${Buffer.alloc(31).toString('base64')}`)).toBeUndefined();
  });
});

test('hkdf matches RFC 5869 test case 1', () => {
  const okm = hkdf(Buffer.alloc(22, 0x0b), Buffer.from('000102030405060708090a0b0c', 'hex'), Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex'), 42);
  expect(okm.toString('hex')).toBe('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
});
