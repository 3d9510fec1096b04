import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` (from gateway/) writes a new migration after a schema change.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema/index.ts',
  out: './drizzle',
});
