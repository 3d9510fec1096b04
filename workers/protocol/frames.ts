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

/** The most a base64 `media.data` may hold once decoded (the gateway checks it before queueing). */
export const MAX_INLINE_MEDIA_BYTES = 16 * 1024 * 1024;

/**
 * Media to send: exactly one of `url` (https, fetched by the worker) or
 * `data` (base64), with its MIME type.
 */
export const MediaInput = Type.Object({
  url: Type.Optional(Type.String({ pattern: '^https://\\S+$', maxLength: 4096 })),
  data: Type.Optional(Type.String({ minLength: 1, description: 'base64' })),
  mimetype: Type.String({ pattern: '^[a-z]+/[A-Za-z0-9.+_-]+(;.*)?$', maxLength: 255 }),
  filename: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
});
export type MediaInput = Static<typeof MediaInput>;

/**
 * A message the instance sent or received, as WhatsApp knows it: what
 * replies, reactions, edits, revokes and read receipts point at. The gateway
 * fills it in from its own records (a sent message's provider id, a received
 * message's event).
 */
export const MessageRef = Type.Object({
  /** The provider's message id. */
  id: Type.String({ minLength: 1, maxLength: 256 }),
  /** The chat it is in: the other party's phone. */
  chat: Type.String({ pattern: PHONE_PATTERN }),
  /** True when this instance sent it. */
  fromMe: Type.Boolean(),
});
export type MessageRef = Static<typeof MessageRef>;

/**
 * A template send: its name and language as approved on the WhatsApp
 * Business Account, and the components' parameters in the Cloud API's own
 * shape (`[{type: "body", parameters: [{type: "text", text: "…"}]}]`), passed
 * through unchanged.
 */
export const TemplateInput = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9_]{1,512}$' }),
  language: Type.String({ pattern: '^[a-z]{2,3}(_[A-Za-z]{2,4})?$', description: 'e.g. en_US, pt_BR, de' }),
  components: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()), { maxItems: 20 })),
});
export type TemplateInput = Static<typeof TemplateInput>;

const InteractiveCommon = {
  body: Type.String({ minLength: 1, maxLength: 1024 }),
  header: Type.Optional(Type.String({ minLength: 1, maxLength: 60 })),
  footer: Type.Optional(Type.String({ minLength: 1, maxLength: 60 })),
};

/** Up to 3 reply buttons, or a list menu (a button label and up to 10 rows in sections); the Cloud API's limits. */
export const InteractiveInput = Type.Union([
  Type.Object({
    kind: Type.Literal('buttons'),
    ...InteractiveCommon,
    buttons: Type.Array(Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }), title: Type.String({ minLength: 1, maxLength: 20 }) }), {
      minItems: 1,
      maxItems: 3,
    }),
  }),
  Type.Object({
    kind: Type.Literal('list'),
    ...InteractiveCommon,
    button: Type.String({ minLength: 1, maxLength: 20, description: 'label of the button that opens the list' }),
    sections: Type.Array(
      Type.Object({
        title: Type.Optional(Type.String({ minLength: 1, maxLength: 24 })),
        rows: Type.Array(
          Type.Object({
            id: Type.String({ minLength: 1, maxLength: 200 }),
            title: Type.String({ minLength: 1, maxLength: 24 }),
            description: Type.Optional(Type.String({ maxLength: 72 })),
          }),
          { minItems: 1, maxItems: 10 },
        ),
      }),
      { minItems: 1, maxItems: 10 },
    ),
  }),
]);
export type InteractiveInput = Static<typeof InteractiveInput>;

const sendBase = {
  /** The gateway's message id; the worker reports receipts against it. */
  messageId: Type.String({ minLength: 1 }),
  to: Type.String({ pattern: PHONE_PATTERN }),
  /** Quote an earlier message. */
  replyTo: Type.Optional(MessageRef),
};
const Caption = Type.Optional(Type.String({ maxLength: 4096 }));

/** One schema per message type; the `type` field tells them apart. */
export const SendMessageTypes = {
  text: Type.Object({
    ...sendBase,
    type: Type.Literal('text'),
    text: Type.String({ minLength: 1, maxLength: 65536 }),
    /** Ask for a preview of the first URL in the text (waba; the others decide by themselves). */
    previewUrl: Type.Optional(Type.Boolean()),
  }),
  image: Type.Object({ ...sendBase, type: Type.Literal('image'), media: MediaInput, caption: Caption }),
  video: Type.Object({ ...sendBase, type: Type.Literal('video'), media: MediaInput, caption: Caption }),
  audio: Type.Object({
    ...sendBase,
    type: Type.Literal('audio'),
    media: MediaInput,
    /** true: a voice note (push-to-talk) rather than an audio file. */
    ptt: Type.Optional(Type.Boolean()),
  }),
  document: Type.Object({ ...sendBase, type: Type.Literal('document'), media: MediaInput, caption: Caption }),
  sticker: Type.Object({ ...sendBase, type: Type.Literal('sticker'), media: MediaInput }),
  location: Type.Object({
    ...sendBase,
    type: Type.Literal('location'),
    location: Type.Object({
      latitude: Type.Number({ minimum: -90, maximum: 90 }),
      longitude: Type.Number({ minimum: -180, maximum: 180 }),
      name: Type.Optional(Type.String({ maxLength: 1024 })),
      address: Type.Optional(Type.String({ maxLength: 1024 })),
    }),
  }),
  contact: Type.Object({
    ...sendBase,
    type: Type.Literal('contact'),
    contact: Type.Object({ name: Type.String({ minLength: 1, maxLength: 256 }), phone: Type.String({ pattern: PHONE_PATTERN }) }),
  }),
  /** React to `target`; an empty emoji removes the reaction. */
  reaction: Type.Object({ ...sendBase, type: Type.Literal('reaction'), target: MessageRef, emoji: Type.String({ maxLength: 32 }) }),
  /** Replace the text of a message this instance sent. */
  edit: Type.Object({ ...sendBase, type: Type.Literal('edit'), target: MessageRef, text: Type.String({ minLength: 1, maxLength: 65536 }) }),
  /** Delete a message this instance sent, for everyone. */
  revoke: Type.Object({ ...sendBase, type: Type.Literal('revoke'), target: MessageRef }),
  /** waba only: a message template approved for the WhatsApp Business Account. */
  template: Type.Object({ ...sendBase, type: Type.Literal('template'), template: TemplateInput }),
  /** waba only: reply buttons or a list menu. */
  interactive: Type.Object({ ...sendBase, type: Type.Literal('interactive'), interactive: InteractiveInput }),
} as const;
export type SendMessageType = keyof typeof SendMessageTypes;
export const SEND_MESSAGE_TYPES = Object.keys(SendMessageTypes) as SendMessageType[];

export const SendArgs = Type.Union(Object.values(SendMessageTypes));
export type SendArgs = Static<typeof SendArgs>;
/** Kept for callers that only send text. */
export const SendTextArgs = SendMessageTypes.text;

/** Mark received messages as read (blue ticks) in one chat. */
export const ReadArgs = Type.Object({
  chat: Type.String({ pattern: PHONE_PATTERN }),
  messageIds: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 100 }),
});

/**
 * Show the chat a typing indicator (`composing`) or stop it (`paused`); the
 * gateway sends `composing` shortly before a paced send when pacing.typing is
 * on. Answers `{}`; providers without one answer unsupported_command.
 */
export const PresenceArgs = Type.Object({
  chat: Type.String({ pattern: PHONE_PATTERN }),
  state: Type.Union([Type.Literal('composing'), Type.Literal('paused')]),
});

/**
 * sandbox only: faults to inject. `rateLimitNext`: the next n sends fail with
 * `rate_limited` (as a provider's rate limit or temporary block would),
 * `retryAfter` seconds given with them when set.
 */
export const SandboxFaultsArgs = Type.Object({
  rateLimitNext: Type.Integer({ minimum: 0, maximum: 1000 }),
  retryAfter: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
});

/** Link by phone number instead of a QR: the worker answers `{code}` (8 characters) to type on the phone. */
export const PairCodeArgs = Type.Object({ phone: Type.String({ pattern: PHONE_PATTERN }) });

/**
 * Kinds of received message: the send types, `button` (the recipient tapped
 * a reply button or a list row; waba) and `unknown` for anything the provider
 * cannot map (the event still arrives).
 */
export const RECEIVED_MESSAGE_TYPES = [...SEND_MESSAGE_TYPES, 'button', 'unknown'] as const;
export type ReceivedMessageType = (typeof RECEIVED_MESSAGE_TYPES)[number];

/**
 * Received media. From the worker: `data` (base64, at most
 * MAX_INLINE_MEDIA_BYTES decoded). The gateway stores the bytes and replaces
 * `data` with `url` (its own download route) before the event is stored or
 * delivered, so webhooks never carry the bytes.
 */
export const ReceivedMedia = Type.Object({
  data: Type.Optional(Type.String()),
  url: Type.Optional(Type.String()),
  mimetype: Type.String({ maxLength: 255 }),
  filename: Type.Optional(Type.String({ maxLength: 255 })),
  size: Type.Optional(Type.Integer({ minimum: 0 })),
});

/**
 * One shape for every provider. Fields beyond id/from/chat/type/timestamp
 * appear when the type has them: text (text, edit), caption and media
 * (image, video, audio, document, sticker), ptt (audio), location, contact,
 * emoji and target (reaction), target (edit, revoke), replyTo (any).
 */
export const ReceivedMessage = Type.Object({
  /** The provider's id of the message. */
  id: Type.String(),
  /** Sender's phone. */
  from: Type.String(),
  /** The chat's phone (the same as `from` in a one-to-one chat). */
  chat: Type.Optional(Type.String()),
  type: Type.Union(RECEIVED_MESSAGE_TYPES.map((t) => Type.Literal(t))),
  text: Type.Optional(Type.String()),
  caption: Type.Optional(Type.String()),
  media: Type.Optional(ReceivedMedia),
  ptt: Type.Optional(Type.Boolean()),
  location: Type.Optional(
    Type.Object({
      latitude: Type.Number(),
      longitude: Type.Number(),
      name: Type.Optional(Type.String()),
      address: Type.Optional(Type.String()),
    }),
  ),
  contact: Type.Optional(Type.Object({ name: Type.String(), phone: Type.Optional(Type.String()), vcard: Type.Optional(Type.String()) })),
  emoji: Type.Optional(Type.String()),
  /** button: the reply button or list row tapped (its id as sent, when the provider knows it) or a template's quick reply. */
  button: Type.Optional(Type.Object({ id: Type.Optional(Type.String()), title: Type.String() })),
  target: Type.Optional(MessageRef),
  replyTo: Type.Optional(MessageRef),
  timestamp: Type.String({ description: 'ISO 8601' }),
});
export type ReceivedMessage = Static<typeof ReceivedMessage>;

/**
 * sandbox only: a message arrives as if from WhatsApp, in the received
 * shape. `id` is the provider id the sender's side knows it by (the gateway
 * passes it for messages between two sandbox instances); absent, the sandbox
 * makes one.
 */
export const SandboxInboundArgs = Type.Composite([
  Type.Omit(ReceivedMessage, ['id', 'from', 'timestamp']),
  Type.Object({ from: Type.String({ pattern: PHONE_PATTERN }), id: Type.Optional(Type.String({ minLength: 1 })) }),
]);

/** Every command, by name, with its arguments. */
export const Commands = {
  send: SendArgs,
  read: ReadArgs,
  'pair-code': PairCodeArgs,
  presence: PresenceArgs,
  logout: Type.Object({}),
  /** sandbox only: the simulated phone scans the current QR. */
  'sandbox.scan': Type.Object({}),
  /** sandbox only: a message arrives as if from WhatsApp. */
  'sandbox.inbound': SandboxInboundArgs,
  /** sandbox only: inject faults (a rate limit on the next sends). */
  'sandbox.faults': SandboxFaultsArgs,
  /**
   * waba only: one `value` of a Cloud API webhook (`entry[].changes[].value`,
   * field `messages`) for this number, its signature already verified by the
   * gateway. The worker turns its messages and statuses into events (event
   * ids from Meta's ids, so a redelivered webhook is stored once) and answers
   * `{messages, statuses}` counts.
   */
  'waba.inbound': Type.Object({ value: Type.Record(Type.String(), Type.Unknown()) }),
  /** waba only: the WABA's message templates, fresh from the Graph API: `{templates: [{name, language, status, category, components}]}`. */
  'waba.templates': Type.Object({}),
} as const;
export type CommandName = keyof typeof Commands;
export const COMMAND_NAMES = Object.keys(Commands) as CommandName[];
export type CommandArgs<N extends CommandName> = Static<(typeof Commands)[N]>;

// ---------------------------------------------------------------- events

export const MessageReceived = Type.Object({
  type: Type.Literal('message.received'),
  data: ReceivedMessage,
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
    /** failed: the gateway's error code for it, e.g. template_required (the same codes a refused send answers with). */
    code: Type.Optional(Type.String()),
    /** failed: the provider's own error code, e.g. Meta's 131047. */
    providerCode: Type.Optional(Type.Integer()),
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
  error: Type.Optional(
    Type.Object({
      code: Type.String(),
      message: Type.String(),
      /** The provider's own error code when it gave one (waba: Meta's error code, e.g. 131047). */
      providerCode: Type.Optional(Type.Integer()),
      /** Seconds after which a retry may succeed (rate limits). */
      retryAfter: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
  ),
});

export const Ping = Type.Object({ type: Type.Literal('ping'), t: Type.Number() });
export const Pong = Type.Object({ type: Type.Literal('pong'), t: Type.Number() });

/** What a worker process uses, as it measures itself. */
export const WorkerUsage = Type.Object({
  /** Resident set size of the worker's process now, in bytes. */
  rssBytes: Type.Integer({ minimum: 0 }),
  /** User + system CPU time of the worker's process since it started, in seconds. */
  cpuSeconds: Type.Number({ minimum: 0 }),
});
export type WorkerUsage = Static<typeof WorkerUsage>;

/**
 * A worker's ping: right after each welcome and then at every ping interval
 * (15 s), with `usage` (optional: workers before it send `{t}` only).
 */
export const WorkerPing = Type.Object({ type: Type.Literal('ping'), t: Type.Number(), usage: Type.Optional(WorkerUsage) });

export const WorkerFrame = Type.Union([Hello, StateFrame, QrFrame, EventFrame, ResultFrame, WorkerPing, Pong]);
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
  name: Type.Union(COMMAND_NAMES.map((n) => Type.Literal(n))),
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
