export * from './users';
export * from './api-keys';
export * from './nodes';
export * from './instances';
export * from './commands';
export * from './messages';
export * from './events';
export * from './webhooks';
