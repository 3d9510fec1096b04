import { describe, expect, test } from 'bun:test';
import { createHmac, randomBytes } from 'node:crypto';
import { SecretBox } from '../lib/secret-box';
import { checkWabaInput, sealAccount, sealChanges } from './account';
import { signatureValid } from './inbound';

const good = { phoneNumberId: '106540352242922', wabaId: '102290129340398', accessToken: 'EAAG' + 'a'.repeat(60), appSecret: 'f'.repeat(32), verifyToken: 'vt' };

describe('checkWabaInput', () => {
  test('a whole account passes; each bad or missing field is a 422 naming it', () => {
    expect(checkWabaInput(good)).toEqual(good);
    for (const field of Object.keys(good) as (keyof typeof good)[]) {
      const { [field]: _, ...missing } = good;
      expect(() => checkWabaInput(missing)).toThrow(`invalid field 'waba.${field}': is required`);
      expect(() => checkWabaInput({ ...good, [field]: 'with space' })).toThrow(`invalid field 'waba.${field}'`);
      expect(() => checkWabaInput({ ...good, [field]: 42 })).toThrow(`invalid field 'waba.${field}'`);
    }
    expect(() => checkWabaInput({ ...good, token: 'x' })).toThrow("invalid field 'waba.token': unknown field");
    expect(() => checkWabaInput([good])).toThrow("invalid field 'waba': must be an object");
    expect(() => checkWabaInput(undefined)).toThrow("invalid field 'waba': required for provider waba");
    try {
      checkWabaInput({});
    } catch (err) {
      expect(err).toMatchObject({ status: 422, code: 'invalid_field' });
    }
  });

  test('an update takes any subset, at least one field', () => {
    expect(checkWabaInput({ accessToken: good.accessToken }, { partial: true })).toEqual({ accessToken: good.accessToken });
    expect(() => checkWabaInput({}, { partial: true })).toThrow('give at least one of');
  });

  test('secrets are sealed: only the last 4 of the token stay readable', () => {
    const box = new SecretBox(randomBytes(32).toString('base64'));
    const row = sealAccount(box, good, { instanceId: 1, userId: 2 });
    expect(JSON.stringify(row)).not.toContain(good.accessToken);
    expect(JSON.stringify(row)).not.toContain(good.appSecret);
    expect(row.accessTokenLast4).toBe('aaaa');
    expect(box.open(row.appSecretSealed)).toBe(good.appSecret);
    expect(Object.keys(sealChanges(box, { verifyToken: 'new' }))).toEqual(['verifyTokenSealed']);
  });
});

describe('signatureValid', () => {
  const body = new TextEncoder().encode('{"object":"whatsapp_business_account","entry":[]}');
  const sign = (secret: string, bytes: Uint8Array) => `sha256=${createHmac('sha256', secret).update(bytes).digest('hex')}`;
  test('the HMAC-SHA256 of the raw body under the app secret, and nothing else', () => {
    expect(signatureValid('s3cret', body, sign('s3cret', body))).toBe(true);
    expect(signatureValid('s3cret', body, sign('s3cret', body).toUpperCase().replace('SHA256=', 'sha256='))).toBe(true);
    expect(signatureValid('s3cret', body, sign('other', body))).toBe(false);
    expect(signatureValid('s3cret', body, sign('s3cret', new TextEncoder().encode('{"object":"x"}')))).toBe(false);
    expect(signatureValid('s3cret', body, null)).toBe(false);
    expect(signatureValid('s3cret', body, 'sha1=abc')).toBe(false);
    expect(signatureValid('s3cret', body, sign('s3cret', body).slice(0, -2))).toBe(false);
  });
});
