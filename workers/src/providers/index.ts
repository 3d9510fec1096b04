import type { Config } from '../config';
import { IMPLEMENTED_PROVIDERS, type ProviderName } from './names';
import { SandboxProvider } from './sandbox';
import { ProviderError, type Provider, type ProviderContext } from './types';

export { IMPLEMENTED_PROVIDERS, type ProviderName };
export { ProviderError, type Provider, type ProviderContext, type SessionReporter } from './types';

/** The engine named by WGS_PROVIDER, configured from the worker's config. */
export function createProvider(name: ProviderName, config: Config): Provider {
  switch (name) {
    case 'sandbox':
      return new SandboxProvider({ instanceId: config.instanceId, ...config.sandbox });
    case 'baileys':
      // Baileys (and its native and optional dependencies) load only when this provider runs.
      return lazyProvider('baileys', async () => {
        const { BaileysProvider } = await import('./baileys/provider');
        return new BaileysProvider({ ...config.baileys, logLevel: config.logLevel });
      });
    case 'waba':
      // The Cloud API provider loads only when chosen, like the others but the sandbox.
      return lazyProvider('waba', async () => {
        if (!config.waba) throw new Error('WGS_PROVIDER=waba needs the WABA_* settings');
        const { WabaProvider } = await import('./waba/provider');
        return new WabaProvider(config.waba);
      });
    default: {
      const unknown: never = name;
      throw new Error(`provider ${JSON.stringify(unknown)} is not implemented; implemented: ${IMPLEMENTED_PROVIDERS.join(', ')}`);
    }
  }
}

/** A provider whose module is imported at start(). */
function lazyProvider(name: string, load: () => Promise<Provider>): Provider {
  let loaded: Provider | undefined;
  return {
    name,
    async start(ctx: ProviderContext) {
      loaded = await load();
      await loaded.start(ctx);
    },
    async stop() {
      await loaded?.stop();
    },
    async execute(command, args) {
      if (!loaded) throw new ProviderError('not_ready', `${name} provider is not running`);
      return loaded.execute(command, args);
    },
  };
}
