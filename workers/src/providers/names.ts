/**
 * The engines this worker implements. Kept apart from the registry so the
 * config can validate WGS_PROVIDER without loading any engine.
 */
export const IMPLEMENTED_PROVIDERS = ['sandbox', 'baileys', 'waba'] as const;
export type ProviderName = (typeof IMPLEMENTED_PROVIDERS)[number];
