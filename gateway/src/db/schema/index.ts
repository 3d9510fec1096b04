export * from './users';
export * from './api-keys';
export * from './nodes';
export * from './instances';
