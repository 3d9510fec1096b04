import type { Config } from '../config';
import { IMPLEMENTED_PROVIDERS, type ProviderName } from './names';
import { SandboxProvider } from './sandbox';
import type { Provider } from './types';

export { IMPLEMENTED_PROVIDERS, type ProviderName };
export { ProviderError, type Provider, type ProviderContext, type SessionReporter } from './types';

/** The engine named by WGS_PROVIDER, configured from the worker's config. */
export function createProvider(name: ProviderName, config: Config): Provider {
  switch (name) {
    case 'sandbox':
      return new SandboxProvider({ instanceId: config.instanceId, ...config.sandbox });
    default: {
      const unknown: never = name;
      throw new Error(`provider ${JSON.stringify(unknown)} is not implemented; implemented: ${IMPLEMENTED_PROVIDERS.join(', ')}`);
    }
  }
}
