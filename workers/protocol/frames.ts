/**
 * The worker ↔ gateway protocol, version 1: JSON text frames over one
 * WebSocket that the worker dials (see README.md beside this file).
 * Both sides validate every frame against these schemas.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export const PROTOCOL_VERSION = 1;

/** Where workers connect on the gateway. */
export const WORKER_WS_PATH = '/internal/workers/ws';

export const SESSION_STATES = ['starting', 'qr', 'pairing', 'connected', 'reconnecting', 'logged_out', 'failed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

const SessionStateSchema = Type.Union([
  Type.Literal('starting'),
  Type.Literal('qr'),
  Type.Literal('pairing'),
  Type.Literal('connected'),
  Type.Literal('reconnecting'),
  Type.Literal('logged_out'),
  Type.Literal('failed'),
]);

/** Phone numbers: digits only (E.164 without the plus), 7 to 15 of them. */
export const PHONE_PATTERN = '^[1-9][0-9]{6,14}$';

// ---------------------------------------------------------------- commands

export const SendTextArgs = Type.Object({
  /** The gateway's message id; the worker reports receipts against it. */
  messageId: Type.String({ minLength: 1 }),
  to: Type.String({ pattern: PHONE_PATTERN }),
  type: Type.Literal('text'),
  text: Type.String({ minLength: 1, maxLength: 65536 }),
});

export const SandboxInboundArgs = Type.Object({
  from: Type.String({ pattern: PHONE_PATTERN }),
  type: Type.Literal('text'),
  text: Type.String({ minLength: 1, maxLength: 65536 }),
});

/** Every command, by name, with its arguments. */
export const Commands = {
  send: SendTextArgs,
  logout: Type.Object({}),
  /** sandbox only: the simulated phone scans the current QR. */
  'sandbox.scan': Type.Object({}),
  /** sandbox only: a message arrives as if from WhatsApp. */
  'sandbox.inbound': SandboxInboundArgs,
} as const;
export type CommandName = keyof typeof Commands;
export const COMMAND_NAMES = Object.keys(Commands) as CommandName[];
export type CommandArgs<N extends CommandName> = Static<(typeof Commands)[N]>;

// ---------------------------------------------------------------- events

export const MessageReceived = Type.Object({
  type: Type.Literal('message.received'),
  data: Type.Object({
    /** The provider's id of the message. */
    id: Type.String(),
    from: Type.String(),
    type: Type.Literal('text'),
    text: Type.String(),
    timestamp: Type.String({ description: 'ISO 8601' }),
  }),
});

export const MESSAGE_STATUSES = ['queued', 'sent', 'delivered', 'read', 'failed'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

export const MessageStatusEvent = Type.Object({
  type: Type.Literal('message.status'),
  data: Type.Object({
    /** The gateway's message id given in the send command. */
    messageId: Type.String(),
    status: Type.Union([Type.Literal('sent'), Type.Literal('delivered'), Type.Literal('read'), Type.Literal('failed')]),
    error: Type.Optional(Type.String()),
    timestamp: Type.String({ description: 'ISO 8601' }),
  }),
});

export const WorkerEvent = Type.Union([MessageReceived, MessageStatusEvent]);
export type WorkerEvent = Static<typeof WorkerEvent>;

// ---------------------------------------------------------------- frames: worker → gateway

export const Hello = Type.Object({
  type: Type.Literal('hello'),
  protocol: Type.Integer({ minimum: 1 }),
  instanceId: Type.Integer({ minimum: 1 }),
  /** The per-instance token from WGS_WORKER_TOKEN; valid for this instance only. */
  token: Type.String({ minLength: 1 }),
  provider: Type.String(),
  workerVersion: Type.String(),
});

export const StateFrame = Type.Object({
  type: Type.Literal('state'),
  state: SessionStateSchema,
  reason: Type.Optional(Type.String()),
});

export const QrFrame = Type.Object({
  type: Type.Literal('qr'),
  code: Type.String({ minLength: 1 }),
  expiresAt: Type.String({ description: 'ISO 8601' }),
});

export const EventFrame = Type.Object({
  type: Type.Literal('event'),
  /** Unique per instance; the gateway acks it once stored and ignores repeats. */
  eventId: Type.String({ minLength: 1 }),
  event: WorkerEvent,
});

export const ResultFrame = Type.Object({
  type: Type.Literal('result'),
  commandId: Type.Integer(),
  ok: Type.Boolean(),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});

export const Ping = Type.Object({ type: Type.Literal('ping'), t: Type.Number() });
export const Pong = Type.Object({ type: Type.Literal('pong'), t: Type.Number() });

export const WorkerFrame = Type.Union([Hello, StateFrame, QrFrame, EventFrame, ResultFrame, Ping, Pong]);
export type WorkerFrame = Static<typeof WorkerFrame>;

// ---------------------------------------------------------------- frames: gateway → worker

export const Welcome = Type.Object({
  type: Type.Literal('welcome'),
  protocol: Type.Integer(),
  instanceId: Type.Integer(),
  /** The instance's own phone number. */
  phone: Type.String(),
});

export const CommandFrame = Type.Object({
  type: Type.Literal('command'),
  /** Durable id from the gateway's queue; a command may arrive twice, the worker answers both. */
  commandId: Type.Integer(),
  name: Type.Union([Type.Literal('send'), Type.Literal('logout'), Type.Literal('sandbox.scan'), Type.Literal('sandbox.inbound')]),
  args: Type.Record(Type.String(), Type.Unknown()),
});

export const Ack = Type.Object({ type: Type.Literal('ack'), eventId: Type.String() });

export const GatewayFrame = Type.Union([Welcome, CommandFrame, Ack, Ping, Pong]);
export type GatewayFrame = Static<typeof GatewayFrame>;

/** Close codes the gateway uses (4000-4999 are for applications). */
export const CloseCodes = {
  /** hello missing, malformed, for another instance or with a bad token: do not retry with the same token. */
  unauthorized: 4401,
  /** protocol version not supported. */
  unsupportedProtocol: 4426,
  /** a newer connection for the same instance replaced this one. */
  replaced: 4409,
  /** a frame did not match the schema. */
  badFrame: 4400,
} as const;

/** Parses (text, bytes or an already parsed value) and checks a frame; null when it matches no frame. */
export function parseFrame<T extends TSchema>(schema: T, raw: unknown): Static<T> | null {
  let value = raw;
  try {
    if (typeof raw === 'string') value = JSON.parse(raw);
    else if (raw instanceof Uint8Array) value = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    return null;
  }
  return Value.Check(schema, value) ? (value as Static<T>) : null;
}

export function checkArgs<N extends CommandName>(name: N, args: unknown): args is CommandArgs<N> {
  return Value.Check(Commands[name], args);
}
