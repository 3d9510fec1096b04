/**
 * Loaded before every test file (bunfig.toml). Starts one real embedded
 * Postgres for the whole run, unless TEST_DATABASE_URL names a server, and
 * migrates the template database that test files clone.
 */
import { afterAll } from 'bun:test';
import { startTestServer } from './postgres';

const stop = await startTestServer();

afterAll(async () => {
  await stop();
});
