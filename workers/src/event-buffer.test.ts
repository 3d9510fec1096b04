import { expect, test } from 'bun:test';
import type { WorkerEvent } from '../protocol/frames';
import { EventBuffer } from './event-buffer';

const status = (messageId: string): WorkerEvent => ({
  type: 'message.status',
  data: { messageId, status: 'sent', timestamp: new Date(0).toISOString() },
});

test('keeps events in order until acked', () => {
  const buffer = new EventBuffer();
  const a = buffer.push(status('a')).frame;
  const b = buffer.push(status('b')).frame;
  const c = buffer.push(status('c')).frame;
  expect(buffer.unacked().map((f) => f.event)).toEqual([status('a'), status('b'), status('c')]);
  expect(buffer.ack(b.eventId)).toBe(true);
  expect(buffer.ack(b.eventId)).toBe(false);
  expect(buffer.unacked()).toEqual([a, c]);
  expect(a.type).toBe('event');
});

test('ids are unique within a buffer and across buffers (worker restarts)', () => {
  const first = new EventBuffer();
  const second = new EventBuffer();
  const ids = [first, second].flatMap((buffer) => Array.from({ length: 100 }, () => buffer.push(status('x')).frame.eventId));
  expect(new Set(ids).size).toBe(200);
});

test('when full, the oldest event is dropped and counted', () => {
  const buffer = new EventBuffer(2);
  const a = buffer.push(status('a'));
  buffer.push(status('b'));
  expect(a.dropped).toBeUndefined();
  const c = buffer.push(status('c'));
  expect(c.dropped?.eventId).toBe(a.frame.eventId);
  expect(buffer.dropped).toBe(1);
  expect(buffer.unacked().map((f) => f.event)).toEqual([status('b'), status('c')]);
});

test('a provider-given event id is kept; the same id pushed again is one pending frame', () => {
  const buffer = new EventBuffer();
  buffer.push(status('a'), 'waba:m:wamid.1');
  buffer.push(status('b'));
  buffer.push(status('a'), 'waba:m:wamid.1');
  expect(buffer.unacked().map((f) => f.eventId).filter((id) => id.startsWith('waba:'))).toEqual(['waba:m:wamid.1']);
  expect(buffer.size).toBe(2);
  expect(buffer.ack('waba:m:wamid.1')).toBe(true);
});
