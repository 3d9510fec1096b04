import { randomBytes } from 'node:crypto';
import type { Static } from '@sinclair/typebox';
import type { EventFrame, WorkerEvent } from '../protocol/frames';

export type EventFrameT = Static<typeof EventFrame>;

/** Enough for hours of traffic while the gateway is away, small enough to not exhaust memory. */
export const MAX_BUFFERED_EVENTS = 100_000;

/**
 * Events waiting for the gateway's ack, in emission order. Ids are
 * `<boot id>-<sequence>`: the random boot id keeps them unique per instance
 * across worker restarts, because the gateway stores each eventId only once.
 */
export class EventBuffer {
  private readonly pending = new Map<string, EventFrameT>();
  private readonly bootId = randomBytes(6).toString('base64url');
  private seq = 0;
  /** Events dropped because the buffer was full, since the start. */
  dropped = 0;

  constructor(private readonly max = MAX_BUFFERED_EVENTS) {}

  /** Wraps the event in a frame (with the provider's stable `eventId`, if given) and keeps it; when full, the oldest event is dropped (see `dropped`). */
  push(event: WorkerEvent, eventId?: string): { frame: EventFrameT; dropped: EventFrameT | undefined } {
    this.seq += 1;
    const frame: EventFrameT = { type: 'event', eventId: eventId ?? `${this.bootId}-${this.seq}`, event };
    // A provider-given id seen again (e.g. a redelivered webhook) replaces the pending frame: it is sent once more, stored once.
    this.pending.delete(frame.eventId);
    this.pending.set(frame.eventId, frame);
    let dropped: EventFrameT | undefined;
    if (this.pending.size > this.max) {
      const [oldestId, oldest] = this.pending.entries().next().value!;
      this.pending.delete(oldestId);
      dropped = oldest;
      this.dropped += 1;
    }
    return { frame, dropped };
  }

  /** True when the event was still pending. */
  ack(eventId: string): boolean {
    return this.pending.delete(eventId);
  }

  /** Every unacked event, oldest first. */
  unacked(): EventFrameT[] {
    return [...this.pending.values()];
  }

  get size(): number {
    return this.pending.size;
  }
}
