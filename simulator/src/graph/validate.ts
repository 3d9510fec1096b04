/**
 * Validation of `POST /{Phone-Number-ID}/messages` bodies, as the Cloud API
 * answers them.
 *
 * Source: Meta, Cloud API reference "Messages"
 * https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
 * (message object: messaging_product "whatsapp", recipient_type
 * "individual", to, type, context.message_id, and per type text.body ≤ 4096
 * characters, media by id or link with caption ≤ 1024, location
 * latitude/longitude, contacts[].name.formatted_name, reaction message_id +
 * emoji ("" removes), template name + language.code + components,
 * interactive button (1–3 reply buttons, title ≤ 20), list (button ≤ 20,
 * ≤ 10 sections, ≤ 10 rows in all, row title ≤ 24), body.text ≤ 1024) and
 * "Error codes" (errors.ts). Parameter errors name the field in
 * `(#100) …`; missing nested fields are 131008, invalid values 131009.
 */
import { cloudError, invalidParam, invalidValue, missingParam } from './errors';
import type { MediaKind } from './media';
import { waIdOf } from './webhooks';

export const MESSAGE_TYPES = ['text', 'image', 'video', 'audio', 'document', 'sticker', 'location', 'contacts', 'reaction', 'template', 'interactive'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];
const MEDIA_MESSAGE_TYPES = new Set<string>(['image', 'video', 'audio', 'document', 'sticker']);
const INTERACTIVE_TYPES = ['button', 'list', 'cta_url', 'flow', 'product', 'product_list', 'location_request_message', 'address_message'];

export interface StoredTemplate {
  id: string;
  name: string;
  language: string;
  status: 'APPROVED' | 'PENDING' | 'REJECTED' | 'PAUSED' | 'DISABLED';
  category: string;
  components: unknown[];
}

export interface ValidationContext {
  /** the business number's own wa_id (sending to yourself is 131021) */
  ownWaId: string;
  /** a media object of this WABA, by id */
  media(id: string): { kind: MediaKind } | undefined;
  /** templates of this WABA with that name */
  templates(name: string): StoredTemplate[];
}

export interface ValidMessage {
  type: MessageType;
  to: string;
  waId: string;
  template?: StoredTemplate;
  /** accepted, but Meta reports the failure later in a `failed` status */
  asyncFailure?: { code: number; details: string };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

function requireObj(parent: Obj, key: string, path: string): Obj {
  const v = parent[key];
  if (v === undefined || v === null) throw missingParam(path);
  if (!isObj(v)) throw invalidParam(`Param ${path} must be a JSON object.`);
  return v;
}

function requireStr(parent: Obj, key: string, path: string, opts: { max?: number; allowEmpty?: boolean } = {}): string {
  const v = parent[key];
  if (v === undefined || v === null || (v === '' && !opts.allowEmpty)) throw missingParam(path);
  if (!isStr(v)) throw invalidParam(`Param ${path} must be a string.`);
  if (opts.max !== undefined && [...v].length > opts.max) throw invalidParam(`Param ${path} must be at most ${opts.max} characters long.`);
  return v;
}

/** `{{1}}`, `{{2}}` or named `{{first_name}}` placeholders in a template text, counted once each. */
export function placeholderCount(text: unknown): number {
  if (!isStr(text)) return 0;
  return new Set([...text.matchAll(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g)].map((m) => m[1])).size;
}

export function validateMessage(body: unknown, ctx: ValidationContext): ValidMessage {
  if (!isObj(body)) throw invalidParam('The parameter messaging_product is required.');
  checkEnvelope(body);
  const toRaw = body.to;
  if (toRaw === undefined || toRaw === null || toRaw === '') throw invalidParam('The parameter to is required.');
  if (!isStr(toRaw)) throw invalidParam('Param to must be a string.');
  const waId = waIdOf(toRaw);
  if (waId.length < 5 || waId.length > 15) throw invalidValue(`Param to is not a valid phone number: ${JSON.stringify(toRaw)}.`);
  if (waId === ctx.ownWaId) throw cloudError(131021);

  const type = (body.type ?? 'text') as string;
  if (!isStr(type) || !(MESSAGE_TYPES as readonly string[]).includes(type)) {
    throw invalidParam(`Param type must be one of {${MESSAGE_TYPES.map((t) => t.toUpperCase()).sort().join(', ')}} - got "${String(type)}".`);
  }
  if (body.context !== undefined) {
    const c = body.context;
    if (!isObj(c) || !isStr(c.message_id) || c.message_id === '') throw invalidValue("Param context['message_id'] must be a message ID.");
  }
  const out: ValidMessage = { type: type as MessageType, to: toRaw, waId };
  const obj = type === 'contacts' ? {} : requireObj(body, type, type);

  if (type === 'text') {
    requireStr(obj, 'body', "text['body']", { max: 4096 });
    if (obj.preview_url !== undefined && typeof obj.preview_url !== 'boolean') throw invalidParam("Param text['preview_url'] must be a boolean.");
  } else if (MEDIA_MESSAGE_TYPES.has(type)) {
    validateMedia(type, obj, ctx, out);
  } else if (type === 'location') {
    for (const k of ['latitude', 'longitude'] as const) {
      const v = obj[k];
      if (v === undefined || v === null || v === '') throw missingParam(`location['${k}']`);
      const n = typeof v === 'number' ? v : isStr(v) ? Number(v) : NaN;
      const limit = k === 'latitude' ? 90 : 180;
      if (!Number.isFinite(n) || Math.abs(n) > limit) throw invalidValue(`Param location['${k}'] must be a number between -${limit} and ${limit}.`);
    }
  } else if (type === 'contacts') {
    const list = body.contacts;
    if (!Array.isArray(list) || list.length === 0) throw missingParam("contacts[0]['name']");
    list.forEach((c, i) => {
      if (!isObj(c)) throw invalidParam(`Param contacts[${i}] must be a JSON object.`);
      const name = requireObj(c, 'name', `contacts[${i}]['name']`);
      requireStr(name, 'formatted_name', `contacts[${i}]['name']['formatted_name']`);
    });
  } else if (type === 'reaction') {
    requireStr(obj, 'message_id', "reaction['message_id']");
    // an empty emoji removes the reaction
    requireStr(obj, 'emoji', "reaction['emoji']", { allowEmpty: true });
  } else if (type === 'template') {
    out.template = validateTemplate(obj, ctx);
  } else if (type === 'interactive') {
    validateInteractive(obj);
  }
  return out;
}

function checkEnvelope(body: Obj): void {
  const mp = body.messaging_product;
  if (mp === undefined || mp === null || mp === '') throw invalidParam('The parameter messaging_product is required.');
  if (mp !== 'whatsapp') throw invalidParam(`Param messaging_product must be one of {WHATSAPP} - got "${String(mp)}".`);
  if (body.recipient_type !== undefined && body.recipient_type !== 'individual') {
    throw invalidParam(`Param recipient_type must be one of {INDIVIDUAL} - got "${String(body.recipient_type)}".`);
  }
}

/** `{messaging_product, status: "read", message_id}`: a read receipt for an inbound message. */
export function validateReadReceipt(body: unknown): string | undefined {
  if (!isObj(body) || body.status === undefined) return undefined;
  checkEnvelope(body);
  if (body.status !== 'read') throw invalidParam(`Param status must be one of {READ} - got "${String(body.status)}".`);
  const id = body.message_id;
  if (id === undefined || id === null || id === '') throw invalidParam('The parameter message_id is required.');
  if (!isStr(id)) throw invalidParam('Param message_id must be a string.');
  return id;
}

function validateMedia(type: string, obj: Obj, ctx: ValidationContext, out: ValidMessage): void {
  const hasId = obj.id !== undefined && obj.id !== null && obj.id !== '';
  const hasLink = obj.link !== undefined && obj.link !== null && obj.link !== '';
  if (!hasId && !hasLink) throw missingParam(`${type}['id'] or ${type}['link']`);
  if (hasId && hasLink) throw invalidParam(`Param ${type} must contain exactly one of id or link.`);
  if (hasId) {
    if (!isStr(obj.id)) throw invalidParam(`Param ${type}['id'] must be a string.`);
    const m = ctx.media(obj.id);
    if (!m) throw invalidParam(`Param ${type}['id'] is not a valid whatsapp business account media attachment ID`);
    // Meta accepts the send and fails it afterwards when the media does not fit the type
    if (m.kind !== type && !(type === 'document')) {
      out.asyncFailure = { code: 131053, details: `Uploaded media of kind ${m.kind} cannot be sent as ${type}.` };
    }
  } else {
    if (!isStr(obj.link)) throw invalidParam(`Param ${type}['link'] must be a string.`);
    let ok = false;
    try {
      const u = new URL(obj.link);
      ok = u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      ok = false;
    }
    if (!ok) throw invalidValue(`Param ${type}['link'] is not a valid URI.`);
  }
  if (obj.caption !== undefined) {
    if (type === 'audio' || type === 'sticker') throw invalidParam(`Param ${type}['caption'] is not a valid parameter for ${type} messages.`);
    requireStr(obj, 'caption', `${type}['caption']`, { max: 1024, allowEmpty: true });
  }
  if (obj.filename !== undefined && type !== 'document') throw invalidParam(`Param ${type}['filename'] is not a valid parameter for ${type} messages.`);
}

function validateTemplate(obj: Obj, ctx: ValidationContext): StoredTemplate {
  const name = requireStr(obj, 'name', "template['name']");
  const language = requireObj(obj, 'language', "template['language']");
  const code = requireStr(language, 'code', "template['language']['code']");
  const sameName = ctx.templates(name);
  const t = sameName.find((x) => x.language === code);
  if (!t || t.status === 'PENDING' || t.status === 'REJECTED') {
    throw cloudError(132001, { message: '(#132001) Template name does not exist in the translation', details: `template name (${name}) does not exist in ${code}` });
  }
  if (t.status === 'PAUSED') throw cloudError(132015, { details: `Template ${name} (${code}) is paused due to low quality.` });
  if (t.status === 'DISABLED') throw cloudError(132016, { details: `Template ${name} (${code}) is disabled.` });

  const components = obj.components === undefined ? [] : obj.components;
  if (!Array.isArray(components)) throw invalidParam("Param template['components'] must be an array.");
  const given = (kind: string) =>
    components
      .filter((c): c is Obj => isObj(c) && isStr(c.type) && c.type.toLowerCase() === kind)
      .reduce((n, c) => n + (Array.isArray(c.parameters) ? c.parameters.length : 0), 0);
  const defined = (kind: string) => t.components.filter((c): c is Obj => isObj(c) && isStr(c.type) && c.type.toLowerCase() === kind);

  const bodyWant = defined('body').reduce((n, c) => n + placeholderCount(c.text), 0);
  const bodyGot = given('body');
  if (bodyGot !== bodyWant) {
    throw cloudError(132000, {
      message: '(#132000) Number of parameters does not match the expected number of params',
      details: `body: number of localizable_params (${bodyGot}) does not match the expected number of params (${bodyWant})`,
    });
  }
  const textHeaders = defined('header').filter((c) => !isStr(c.format) || c.format.toUpperCase() === 'TEXT');
  if (textHeaders.length > 0) {
    const want = textHeaders.reduce((n, c) => n + placeholderCount(c.text), 0);
    const got = given('header');
    if (got !== want) {
      throw cloudError(132000, {
        message: '(#132000) Number of parameters does not match the expected number of params',
        details: `header: number of localizable_params (${got}) does not match the expected number of params (${want})`,
      });
    }
  }
  for (const c of components) {
    if (!isObj(c) || !Array.isArray(c.parameters)) continue;
    c.parameters.forEach((p, i) => {
      if (!isObj(p) || !isStr(p.type)) throw missingParam(`template['components'][${String(c.type)}]['parameters'][${i}]['type']`);
      if (p.type === 'text' && !isStr(p.text)) throw missingParam(`template['components'][${String(c.type)}]['parameters'][${i}]['text']`);
    });
  }
  return t;
}

function validateInteractive(obj: Obj): void {
  const kind = requireStr(obj, 'type', "interactive['type']");
  if (!INTERACTIVE_TYPES.includes(kind)) {
    throw invalidParam(`Param interactive['type'] must be one of {${INTERACTIVE_TYPES.map((t) => t.toUpperCase()).join(', ')}} - got "${kind}".`);
  }
  if (kind === 'button' || kind === 'list' || kind === 'cta_url') {
    const body = requireObj(obj, 'body', "interactive['body']");
    requireStr(body, 'text', "interactive['body']['text']", { max: 1024 });
  }
  if (obj.footer !== undefined && isObj(obj.footer)) requireStr(obj.footer, 'text', "interactive['footer']['text']", { max: 60 });
  const action = requireObj(obj, 'action', "interactive['action']");
  if (kind === 'button') {
    const buttons = action.buttons;
    if (!Array.isArray(buttons) || buttons.length === 0) throw missingParam("interactive['action']['buttons']");
    if (buttons.length > 3) throw invalidValue("Param interactive['action']['buttons'] must have between 1 and 3 elements.");
    const ids = new Set<string>();
    const titles = new Set<string>();
    buttons.forEach((b, i) => {
      const p = `interactive['action']['buttons'][${i}]`;
      if (!isObj(b)) throw invalidParam(`Param ${p} must be a JSON object.`);
      if (b.type !== 'reply') throw invalidParam(`Param ${p}['type'] must be one of {REPLY} - got "${String(b.type)}".`);
      const reply = requireObj(b, 'reply', `${p}['reply']`);
      const id = requireStr(reply, 'id', `${p}['reply']['id']`, { max: 256 });
      const title = requireStr(reply, 'title', `${p}['reply']['title']`, { max: 20 });
      if (ids.has(id) || titles.has(title)) throw invalidValue('Button title and id must be unique.');
      ids.add(id);
      titles.add(title);
    });
  } else if (kind === 'list') {
    requireStr(action, 'button', "interactive['action']['button']", { max: 20 });
    const sections = action.sections;
    if (!Array.isArray(sections) || sections.length === 0) throw missingParam("interactive['action']['sections']");
    if (sections.length > 10) throw invalidValue("Param interactive['action']['sections'] must have between 1 and 10 elements.");
    let rows = 0;
    const ids = new Set<string>();
    sections.forEach((s, i) => {
      const p = `interactive['action']['sections'][${i}]`;
      if (!isObj(s)) throw invalidParam(`Param ${p} must be a JSON object.`);
      if (sections.length > 1) requireStr(s, 'title', `${p}['title']`, { max: 24 });
      if (!Array.isArray(s.rows) || s.rows.length === 0) throw missingParam(`${p}['rows']`);
      s.rows.forEach((r, j) => {
        const rp = `${p}['rows'][${j}]`;
        if (!isObj(r)) throw invalidParam(`Param ${rp} must be a JSON object.`);
        const id = requireStr(r, 'id', `${rp}['id']`, { max: 200 });
        requireStr(r, 'title', `${rp}['title']`, { max: 24 });
        if (r.description !== undefined) requireStr(r, 'description', `${rp}['description']`, { max: 72 });
        if (ids.has(id)) throw invalidValue('Row ids must be unique.');
        ids.add(id);
        rows++;
      });
    });
    if (rows > 10) throw invalidValue('The total number of rows across all sections must be at most 10.');
  } else if (kind === 'cta_url') {
    if (action.name !== 'cta_url') throw invalidParam(`Param interactive['action']['name'] must be one of {CTA_URL} - got "${String(action.name)}".`);
    const params = requireObj(action, 'parameters', "interactive['action']['parameters']");
    requireStr(params, 'display_text', "interactive['action']['parameters']['display_text']", { max: 20 });
    requireStr(params, 'url', "interactive['action']['parameters']['url']");
  }
}
