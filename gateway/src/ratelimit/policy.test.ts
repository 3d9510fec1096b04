import { describe, expect, test } from 'bun:test';
import { decide, rateLimitHeaders, refusal, windowKeys, type WindowState } from './policy';

const key = (count: number, limit = 5): WindowState => ({ scope: 'key', limit, count, resetSeconds: 30 });
const tenant = (count: number, limit = 10): WindowState => ({ scope: 'tenant', limit, count, resetSeconds: 30 });

describe('rate-limit policy', () => {
  test('only limits a plan sets are counted', () => {
    expect(windowKeys({ perKey: null, perTenant: null }, 7, 3)).toEqual([]);
    expect(windowKeys({ perKey: 5, perTenant: null }, 7, 3)).toEqual([{ scope: 'key', key: 'key:3', limit: 5 }]);
    expect(windowKeys({ perKey: 5, perTenant: 10 }, 7, 3).map((k) => k.key)).toEqual(['key:3', 'tenant:7']);
  });

  test('allowed up to the limit, refused past it', () => {
    expect(decide([])).toBeNull();
    expect(decide([key(5)])!.allowed).toBe(true);
    expect(decide([key(6)])!.allowed).toBe(false);
    expect(decide([key(1), tenant(11)])).toMatchObject({ allowed: false, reported: { scope: 'tenant' } });
  });

  test('headers report the limit closest to exhaustion, or the one refusing', () => {
    expect(rateLimitHeaders(decide([key(1), tenant(2)])!)).toEqual({ 'ratelimit-limit': '5', 'ratelimit-remaining': '4', 'ratelimit-reset': '30' });
    expect(rateLimitHeaders(decide([key(1), tenant(9)])!)).toMatchObject({ 'ratelimit-limit': '10', 'ratelimit-remaining': '1' });
    // Both refused: the key's limit is named; remaining never goes below 0.
    expect(rateLimitHeaders(decide([key(9), tenant(12)])!)).toMatchObject({ 'ratelimit-limit': '5', 'ratelimit-remaining': '0' });
  });

  test('the refusal names the limit and when it resets', () => {
    expect(refusal(decide([key(6)])!, 60)).toBe('rate limit of 5 requests per minute for this API key exceeded; it resets in 30 s');
    expect(refusal(decide([key(1), tenant(11)])!, 60)).toContain('10 requests per minute for this tenant (all of its API keys together)');
  });
});
