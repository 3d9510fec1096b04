import { ProviderError } from '../providers/types';

/** The ProviderError a provider call rejects with; anything else (or no rejection) fails the test. */
export async function providerError(run: Promise<unknown>): Promise<ProviderError> {
  try {
    await run;
  } catch (err) {
    if (err instanceof ProviderError) return err;
    throw err;
  }
  throw new Error('expected a ProviderError');
}
