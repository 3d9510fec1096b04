/**
 * Received media: the worker sends the bytes once, base64 in the event; the
 * gateway keeps them in Postgres and the event (and every webhook) carries
 * only the path of the download route instead. The id derives from the
 * worker's event id, so a redelivered event stores nothing twice.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../db/client';
import { media } from '../db/schema';
import { recordInstanceUsage } from '../usage/ledger';
import type { WorkerEvent } from '../../../workers/protocol/frames';

/** The API path media is served at; relative, so every replica and proxy serves it. */
export function mediaPath(instanceId: number, mediaId: string): string {
  return `/api/instances/${instanceId}/media/${mediaId}`;
}

/** Stores inline media of received messages; returns the batch with `media.data` replaced by `media.url`. */
export async function storeReceivedMedia<T extends { eventId: string; event: WorkerEvent }>(db: Db, instanceId: number, batch: T[]): Promise<T[]> {
  const rows: (typeof media.$inferInsert)[] = [];
  const out = batch.map((item) => {
    const { event } = item;
    if (event.type !== 'message.received' || event.data.media?.data === undefined) return item;
    const { data, ...rest } = event.data.media;
    const bytes = Buffer.from(data, 'base64');
    const id = `med_${createHash('sha256').update(`${instanceId}:${item.eventId}`).digest('hex').slice(0, 24)}`;
    rows.push({ id, instanceId, mimetype: rest.mimetype, filename: rest.filename ?? null, size: bytes.length, data: bytes });
    return { ...item, event: { ...event, data: { ...event.data, media: { ...rest, size: bytes.length, url: mediaPath(instanceId, id) } } } };
  });
  // The bytes and their count in the usage ledger (`media:<id>`, once per stored file) commit together.
  if (rows.length > 0) {
    await db.transaction(async (tx) => {
      const stored = await tx.insert(media).values(rows).onConflictDoNothing().returning({ id: media.id, size: media.size });
      await recordInstanceUsage(tx, instanceId, stored.map((m) => ({ metric: 'media_bytes' as const, quantity: m.size, source: `media:${m.id}` })));
    });
  }
  return out;
}
