import { t } from 'elysia';
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/client';
import { instances, nodes, PROVIDERS, type Instance } from '../db/schema';
import { ApiError, notFound } from '../http/errors';
import { formatMemory, MEMORY_PATTERN, parseCpu, parseMemory } from '../lib/resources';
import { PHONE_PATTERN } from '../../../workers/protocol/frames';
import { checkWabaInput, WabaBody, WabaView, type WabaInput } from '../waba/account';
import { effectivePacing, type PacingDefaults } from '../pacing/settings';

/** The pacing an instance's sends are scheduled with (its own settings over the defaults). */
export const PacingView = t.Object(
  {
    minIntervalMs: t.Integer(),
    jitterMs: t.Integer(),
    maxPerMinute: t.Nullable(t.Integer()),
    maxPerHour: t.Nullable(t.Integer()),
    maxPerDay: t.Nullable(t.Integer()),
    quietHours: t.Nullable(t.Object({ start: t.String(), end: t.String(), timezone: t.String() })),
    warmup: t.Nullable(t.Object({ days: t.Integer(), startPerDay: t.Integer() })),
    typing: t.Boolean(),
  },
  { description: "effective pacing: the instance's own settings (PATCH pacing) over the defaults" },
);

/** Providers with a worker today; the others are accepted names that answer 400. */
export const IMPLEMENTED_PROVIDERS: readonly string[] = ['sandbox', 'whatsmeow', 'baileys', 'waba'];

const PHONE_RE = new RegExp(PHONE_PATTERN);
const invalid = (field: string, message: string) => new ApiError(400, 'validation_failed', `invalid field '${field}': ${message}`);

/** "+49 151 1234-5678" → "4915112345678"; 400 naming the field unless 7 to 15 digits remain. */
export function normalizePhone(field: string, value: string): string {
  const digits = value.trim().replace(/^\+/, '').replace(/[\s().-]/g, '');
  if (!PHONE_RE.test(digits)) {
    throw invalid(field, 'must be an international phone number with 7 to 15 digits, country code first, e.g. "+4915112345678"');
  }
  return digits;
}

export const CreateInstanceBody = t.Object({
  name: t.Optional(t.String({ minLength: 1, maxLength: 100 })),
  phone: t.String({ maxLength: 32, description: 'international number, country code first, e.g. "+4915112345678"' }),
  provider: t.String({ description: `one of ${PROVIDERS.join(', ')}; implemented: ${IMPLEMENTED_PROVIDERS.join(', ')}` }),
  webhook: t.Optional(t.String({ maxLength: 2048, description: 'http(s) URL that receives this instance\'s events' })),
  node: t.Optional(t.String({ maxLength: 63, description: 'place on this node (by name); default: the least loaded node where the limits fit' })),
  waba: t.Optional(WabaBody),
  resources: t.Optional(
    t.Object({
      cpu: t.Optional(t.Union([t.String({ maxLength: 16 }), t.Number()], { description: 'cores, e.g. "0.5"' })),
      memory: t.Optional(t.String({ pattern: MEMORY_PATTERN, description: 'e.g. "512m"' })),
    }),
  ),
});

export interface CreateInstanceInput {
  name: string | null;
  phoneNumber: string;
  provider: (typeof PROVIDERS)[number];
  webhookUrl: string | null;
  cpuLimit: string | null;
  memoryLimit: string | null;
}

/** A checked create body: the instance row's fields, and the Cloud API account of a waba instance. */
export interface CreateInstanceChecked {
  instance: CreateInstanceInput;
  waba?: WabaInput;
}

export function checkCreateInstance(body: typeof CreateInstanceBody.static): CreateInstanceChecked {
  const phoneNumber = normalizePhone('phone', body.phone);
  if (!(PROVIDERS as readonly string[]).includes(body.provider)) {
    throw invalid('provider', `unknown provider "${body.provider}"; one of ${PROVIDERS.join(', ')}`);
  }
  if (!IMPLEMENTED_PROVIDERS.includes(body.provider)) {
    throw new ApiError(400, 'provider_not_implemented', `provider "${body.provider}" is not implemented yet; implemented: ${IMPLEMENTED_PROVIDERS.join(', ')}`);
  }
  let webhookUrl: string | null = null;
  if (body.webhook !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(body.webhook);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw invalid('webhook', 'must be an http:// or https:// URL');
    webhookUrl = url.toString();
  }
  let cpuLimit: string | null = null;
  let memoryLimit: string | null = null;
  if (body.resources?.cpu !== undefined) {
    const raw = String(body.resources.cpu).trim();
    const milli = /^[0-9]+(\.[0-9]+)?$/.test(raw) ? parseCpu(Number(raw)) : null;
    if (milli === null) throw invalid('resources.cpu', 'must be a positive number of cores, e.g. "0.5" or "2"');
    cpuLimit = String(milli / 1000);
  }
  if (body.resources?.memory !== undefined) {
    const bytes = parseMemory(body.resources.memory);
    if (bytes === null) throw invalid('resources.memory', 'must be a size like "512m" or "1g"');
    memoryLimit = formatMemory(bytes);
  }
  let waba: WabaInput | undefined;
  if (body.provider === 'waba') waba = checkWabaInput(body.waba);
  else if (body.waba !== undefined) throw new ApiError(422, 'invalid_field', `invalid field 'waba': only for provider waba (this instance's provider is ${body.provider})`);
  const instance = { name: body.name ?? null, phoneNumber, provider: body.provider as CreateInstanceInput['provider'], webhookUrl, cpuLimit, memoryLimit };
  return { instance, ...(waba && { waba }) };
}

export const InboundBody = t.Object({
  from: t.String({ maxLength: 32, description: 'sender phone number' }),
  text: t.String(),
});

const Timestamp = t.Nullable(t.Date());

export const InstanceView = t.Object({
  id: t.Integer(),
  name: t.Nullable(t.String()),
  phone: t.String(),
  provider: t.String(),
  status: t.String({ description: 'worker lifecycle: creating, starting, running, stopped, error, migrating' }),
  statusReason: t.Nullable(t.String()),
  statusChangedAt: t.Date(),
  state: t.String({ description: 'WhatsApp session: starting, qr, pairing, connected, reconnecting, logged_out, failed' }),
  stateReason: t.Nullable(t.String()),
  stateChangedAt: t.Date(),
  node: t.Nullable(t.String({ description: 'name of the node the worker runs on' })),
  nodeId: t.Nullable(t.Integer()),
  webhook: t.Nullable(t.String()),
  resources: t.Object({ cpu: t.Nullable(t.String()), memory: t.Nullable(t.String()) }),
  waba: t.Optional(WabaView),
  pacing: PacingView,
  pacingCustom: t.Boolean({ description: 'true: the instance has pacing settings of its own; false: the defaults apply' }),
  pausedUntil: t.Nullable(t.Date({ description: 'sending paused (a provider rate limit) until then; null: not paused' })),
  pausedReason: t.Nullable(t.String()),
  createdAt: t.Date(),
  updatedAt: t.Date(),
});

export const MessageView = t.Object({
  id: t.String(),
  to: t.String(),
  type: t.String(),
  status: t.String({ description: 'queued, sent, delivered, read or failed' }),
  providerMessageId: t.Union([t.String(), t.Null()], {
    description: "the id WhatsApp knows the message by, once sent (what the recipient's events and replies refer to)",
  }),
  error: t.Optional(t.String()),
  timestamps: t.Object({ createdAt: t.Date(), sentAt: Timestamp, deliveredAt: Timestamp, readAt: Timestamp, failedAt: Timestamp }),
});

export function toInstanceView(i: Instance, nodeName: string | null, waba?: typeof WabaView.static, pacingDefaults: PacingDefaults = 'safe') {
  const paused = i.pausedUntil !== null && i.pausedUntil.getTime() > Date.now();
  return {
    id: i.id,
    name: i.name,
    phone: i.phoneNumber,
    provider: i.provider,
    status: i.status,
    statusReason: i.statusReason,
    statusChangedAt: i.statusChangedAt,
    state: i.state,
    stateReason: i.stateReason,
    stateChangedAt: i.stateChangedAt,
    node: nodeName,
    nodeId: i.nodeId,
    webhook: i.webhookUrl,
    resources: { cpu: i.cpuLimit, memory: i.memoryLimit },
    ...(waba && { waba }),
    pacing: effectivePacing(i.pacing, i.provider, pacingDefaults),
    pacingCustom: i.pacing !== null,
    pausedUntil: paused ? i.pausedUntil : null,
    pausedReason: paused ? i.pausedReason : null,
    createdAt: i.createdAt,
    updatedAt: i.updatedAt,
  };
}

/** The tenant's instance with its node's name; another tenant's instance is a 404 like a missing one. */
export async function ownedInstance(db: Db, userId: number, id: number) {
  const [row] = await db
    .select({ instance: instances, nodeName: nodes.name })
    .from(instances)
    .leftJoin(nodes, eq(nodes.id, instances.nodeId))
    .where(and(eq(instances.id, id), eq(instances.userId, userId)));
  if (!row) throw notFound(`instance ${id}`);
  return row;
}
