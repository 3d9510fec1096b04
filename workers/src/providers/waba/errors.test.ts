import { describe, expect, test } from 'bun:test';
import { classify, describeMeta, parseGraphError, parseRetryAfter, parseStatusError, toProviderError } from './errors';

const meta = (code: number, subcode?: number, httpStatus = 400) => ({ code, ...(subcode !== undefined && { subcode }), message: `(#${code}) x`, httpStatus });

describe('Meta error → gateway code', () => {
  test('the table', () => {
    const cases: [number, number | undefined, string, boolean][] = [
      [131047, undefined, 'template_required', false],
      [131026, undefined, 'undeliverable', false],
      [131048, undefined, 'spam_rate_limited', false],
      [131049, undefined, 'ecosystem_limited', false],
      [132000, undefined, 'template_error', false],
      [132001, undefined, 'template_error', false],
      [132016, undefined, 'template_error', false],
      [130429, undefined, 'rate_limited', true],
      [131056, undefined, 'rate_limited', true],
      [80007, undefined, 'rate_limited', true],
      [4, undefined, 'rate_limited', true],
      [190, undefined, 'provider_auth_failed', false],
      [0, undefined, 'provider_auth_failed', false],
      [10, undefined, 'provider_auth_failed', false],
      [200, undefined, 'provider_auth_failed', false],
      [299, undefined, 'provider_auth_failed', false],
      [100, 33, 'provider_auth_failed', false],
      [100, undefined, 'provider_rejected', false],
      [131008, undefined, 'provider_rejected', false],
      [131009, undefined, 'provider_rejected', false],
      [131021, undefined, 'provider_rejected', false],
      [131051, undefined, 'provider_rejected', false],
      [135000, undefined, 'provider_rejected', false],
      [131052, undefined, 'media_failed', false],
      [131053, undefined, 'media_failed', false],
      [368, undefined, 'account_restricted', false],
      [131031, undefined, 'account_restricted', false],
      [130497, undefined, 'account_restricted', false],
      [1, undefined, 'provider_error', true],
      [2, undefined, 'provider_error', true],
      [131000, undefined, 'provider_error', true],
      [131016, undefined, 'provider_error', true],
    ];
    for (const [code, subcode, expected, transient] of cases) {
      const c = classify(meta(code, subcode));
      expect({ code, subcode, got: c.code as string, transient: c.transient }).toEqual({ code, subcode, got: expected, transient });
    }
  });

  test('no envelope: 5xx is provider_error (retryable), network is provider_unreachable, unknown 4xx is rejected', () => {
    expect(classify({ message: 'x', httpStatus: 502 })).toEqual({ code: 'provider_error', transient: true, auth: false });
    expect(classify({ message: 'x', network: true })).toEqual({ code: 'provider_unreachable', transient: true, auth: false });
    expect(classify(meta(999999))).toEqual({ code: 'provider_rejected', transient: false, auth: false });
    expect(classify(meta(999999, undefined, 500)).code).toBe('provider_error');
  });

  test('envelope parsing, message format and ProviderError details', () => {
    const m = parseGraphError(
      400,
      { error: { message: '(#131047) Re-engagement message', type: 'OAuthException', code: 131047, error_data: { messaging_product: 'whatsapp', details: 'more than 24 hours' }, fbtrace_id: 'A' } },
      undefined,
    );
    expect(describeMeta(m)).toBe('(#131047) Re-engagement message (Meta error 131047: more than 24 hours)');
    const err = toProviderError(m);
    expect(err.code).toBe('template_required');
    expect(err.details).toEqual({ providerCode: 131047 });
    const limited = toProviderError(parseGraphError(400, { error: { message: 'r', code: 130429 } }, 7));
    expect(limited.details).toEqual({ providerCode: 130429, retryAfter: 7 });
    expect(describeMeta({ code: 100, subcode: 33, message: 'Unsupported get request.' })).toBe('Unsupported get request. (Meta error 100/33)');
    expect(parseGraphError(503, undefined)).toEqual({ message: 'the Graph API answered HTTP 503', httpStatus: 503 });
  });

  test('status webhook errors and Retry-After', () => {
    expect(parseStatusError({ code: 131026, title: 'Message Undeliverable', message: 'Message Undeliverable', error_data: { details: 'not on WhatsApp' } })).toEqual({
      code: 131026,
      title: 'Message Undeliverable',
      message: 'Message Undeliverable',
      details: 'not on WhatsApp',
    });
    expect(parseStatusError({})).toBeUndefined();
    expect(parseRetryAfter('12')).toBe(12);
    expect(parseRetryAfter(new Date(Date.now() + 5_000).toUTCString())).toBeGreaterThanOrEqual(4);
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
