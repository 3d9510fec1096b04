/**
 * The Graph API error object and the WhatsApp Cloud API error codes.
 *
 * Source: Meta, "Error codes", WhatsApp Cloud API reference
 * https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/
 * (titles, descriptions and HTTP statuses as published there; cross-checked
 * against providers that mirror the table: docs.innopaas.com "Meta error
 * codes", developers.kaleyra.io "Cloud API Error Codes", niswey.com), and
 * Graph API "Handling Errors"
 * https://developers.facebook.com/docs/graph-api/guides/error-handling
 * for the envelope `{error: {message, type, code, error_subcode?,
 * error_data, fbtrace_id}}`. Cloud API answers put the code title in
 * `message` as `(#CODE) Title` and the explanation in
 * `error_data.details`; status webhooks carry `{code, title, message,
 * error_data: {details}, href}`.
 */

export interface ErrorCodeInfo {
  /** HTTP status of a synchronous answer with this code */
  status: number;
  /** `type` of the error object */
  type: 'OAuthException' | 'GraphMethodException';
  title: string;
  /** Meta's description, used as `error_data.details` when nothing more precise is known */
  details: string;
}

export const ERROR_DOCS_URL = 'https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/';

const oauth = (status: number, title: string, details: string): ErrorCodeInfo => ({ status, type: 'OAuthException', title, details });

/** The codes Meta documents for the Cloud API (not every one: the ones a client must handle). */
export const ERROR_CODES: Readonly<Record<number, ErrorCodeInfo>> = {
  // Authorization
  0: oauth(401, 'AuthException', 'We were unable to authenticate the app user.'),
  3: oauth(500, 'API Method', 'Capability or permissions issue.'),
  10: oauth(403, 'Permission Denied', 'Permission is either not granted or has been removed.'),
  190: oauth(401, 'Access token has expired', 'Your access token has expired.'),
  200: oauth(403, 'API Permission', 'Permission is either not granted or has been removed.'),
  // Throttling
  4: oauth(400, 'API Too Many Calls', 'The app has reached its API call rate limit.'),
  80007: oauth(400, 'Rate limit issues', 'The WhatsApp Business Account has reached its rate limit.'),
  130429: oauth(400, 'Rate limit hit', 'Cloud API message throughput has been reached.'),
  131048: oauth(
    400,
    'Spam rate limit hit',
    'Message failed to send because there are restrictions on how many messages can be sent from this phone number. This may be because too many previous messages were blocked or flagged as spam.',
  ),
  131056: oauth(
    400,
    '(Business Account, Consumer Account) pair rate limit hit',
    'Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.',
  ),
  // Integrity
  368: oauth(
    403,
    'Temporarily blocked for policies violations',
    'The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.',
  ),
  131031: oauth(
    403,
    'Account has been locked',
    'The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy, or we were unable to verify data included in the request against data set on the WhatsApp Business Account (e.g, the two-step pin included in the request is incorrect).',
  ),
  // Other
  1: oauth(400, 'API Unknown', 'Invalid request or possible server error.'),
  2: oauth(503, 'API Service', 'Temporary due to downtime or due to being overloaded.'),
  33: oauth(400, 'Parameter value is not valid', 'The business phone number has been deleted.'),
  100: oauth(400, 'Invalid parameter', 'The request included one or more unsupported or misspelled parameters.'),
  130472: oauth(400, "User's number is part of an experiment", 'Message was not sent as part of an experiment.'),
  131000: oauth(500, 'Something went wrong', 'Message failed to send due to an unknown error.'),
  131005: oauth(403, 'Access denied', 'Permission is either not granted or has been removed.'),
  131008: oauth(400, 'Required parameter is missing', 'The request is missing a required parameter.'),
  131009: oauth(400, 'Parameter value is not valid', 'One or more parameter values are invalid.'),
  131016: oauth(500, 'Service unavailable', 'A service is temporarily unavailable.'),
  131021: oauth(400, 'Recipient cannot be sender', 'Sender and recipient phone number is the same.'),
  131026: oauth(
    400,
    'Message Undeliverable',
    'Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number; the recipient has not accepted our new Terms of Service and Privacy Policy; the recipient is using an old WhatsApp version.',
  ),
  131042: oauth(400, 'Business eligibility payment issue', 'There was an error related to your payment method.'),
  131045: oauth(400, 'Incorrect certificate', 'Message failed to send due to a phone number registration error.'),
  131047: oauth(
    400,
    'Re-engagement message',
    'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
  ),
  131049: oauth(400, 'Meta chose not to deliver.', 'This message was not delivered to maintain healthy ecosystem engagement.'),
  131050: oauth(400, 'User stopped marketing messages', 'Unable to deliver the marketing message. The user has stopped marketing messages.'),
  131051: oauth(400, 'Unsupported message type', 'Unsupported message type.'),
  131052: oauth(400, 'Media download error', 'Unable to download the media sent by the user.'),
  131053: oauth(400, 'Media upload error', 'Unable to upload the media used in the message.'),
  131057: oauth(500, 'Account in maintenance mode', 'Business Account is in maintenance mode.'),
  132000: oauth(
    400,
    'Template Param Count Mismatch',
    'The number of variable parameter values included in the request did not match the number of variable parameters defined in the template.',
  ),
  132001: oauth(
    404,
    'Template does not exist',
    'The template does not exist in the specified language or the template has not been approved.',
  ),
  132005: oauth(400, 'Template Hydrated Text Too Long', 'Translated text is too long.'),
  132007: oauth(400, 'Template Format Character Policy Violated', 'Template content violates a WhatsApp policy.'),
  132012: oauth(400, 'Template Parameter Format Mismatch', 'Variable parameter values formatted incorrectly.'),
  132015: oauth(400, 'Template is Paused', 'Template is paused due to low quality so it cannot be sent in a template message.'),
  132016: oauth(
    400,
    'Template is Disabled',
    'Template has been paused too many times due to low quality and is now permanently disabled.',
  ),
  132068: oauth(400, 'Flow is blocked', 'Flow is in blocked state.'),
  132069: oauth(400, 'Flow is throttled', 'Flow is in throttled state and 10 messages using this flow were already sent in the last hour.'),
  133010: oauth(400, 'Phone number Not Registered', 'The phone number is not registered on the WhatsApp Business Platform.'),
};

export function codeInfo(code: number): ErrorCodeInfo {
  const known = ERROR_CODES[code];
  if (known) return known;
  // 200-299 are all "API Permission" in Meta's table
  if (code >= 200 && code <= 299) return { ...ERROR_CODES[200]! };
  return oauth(400, 'Unknown error', 'An unknown error occurred.');
}

/** The Graph error envelope, as the body of a failed call. */
export interface GraphErrorBody {
  error: {
    message: string;
    type: string;
    code: number;
    error_subcode?: number;
    error_data?: { messaging_product: 'whatsapp'; details: string };
    fbtrace_id: string;
  };
}

/** A failed Graph call: thrown inside the request handlers, answered in one place. */
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly body: GraphErrorBody,
  ) {
    super(body.error.message);
  }
}

export function fbtraceId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const bytes = crypto.getRandomValues(new Uint8Array(23));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

/**
 * A Cloud API error by code: `message` is `(#CODE) Title` (or `message` if
 * given), `error_data.details` the explanation.
 */
export function cloudError(code: number, opts: { details?: string; message?: string; subcode?: number; httpStatus?: number } = {}): GraphError {
  const info = codeInfo(code);
  return new GraphError(opts.httpStatus ?? info.status, {
    error: {
      message: opts.message ?? `(#${code}) ${info.title}`,
      type: info.type,
      code,
      ...(opts.subcode !== undefined ? { error_subcode: opts.subcode } : {}),
      error_data: { messaging_product: 'whatsapp', details: opts.details ?? info.details },
      fbtrace_id: fbtraceId(),
    },
  });
}

/** `(#100) <message>`: Graph's parameter errors name the field in the message itself. */
export function invalidParam(message: string): GraphError {
  return cloudError(100, { message: `(#100) ${message}`, details: message });
}

/** 131008 with details naming the missing field. */
export function missingParam(field: string): GraphError {
  return cloudError(131008, { details: `The parameter ${field} is required.` });
}

/** 131009 with details naming the field. */
export function invalidValue(details: string): GraphError {
  return cloudError(131009, { details });
}

/**
 * Graph's answer for an object the token cannot see (or that does not exist):
 * code 100, subcode 33, GraphMethodException, HTTP 400.
 */
export function unsupportedRequest(method: string, id: string): GraphError {
  const verb = method === 'GET' ? 'get' : method === 'DELETE' ? 'delete' : 'post';
  return new GraphError(400, {
    error: {
      message: `Unsupported ${verb} request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
      type: 'GraphMethodException',
      code: 100,
      error_subcode: 33,
      fbtrace_id: fbtraceId(),
    },
  });
}

/** Unknown (or unparsable) token: 401, code 190, no subcode. */
export function invalidToken(): GraphError {
  return new GraphError(401, {
    error: { message: 'Invalid OAuth access token - Cannot parse access token', type: 'OAuthException', code: 190, fbtrace_id: fbtraceId() },
  });
}

/** No token at all: Graph's code 104 (answered 401 here, see the fidelity notes). */
export function missingToken(): GraphError {
  return new GraphError(401, {
    error: { message: 'An access token is required to request this resource.', type: 'OAuthException', code: 104, fbtrace_id: fbtraceId() },
  });
}

/** Meta's dates in token errors: `Tuesday, 10-Jun-25 03:00:00 PDT` (Pacific time). */
export function metaDate(d: Date): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: 'America/Los_Angeles',
      weekday: 'long',
      day: '2-digit',
      month: 'short',
      year: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    })
      .formatToParts(d)
      .map((p) => [p.type, p.value]),
  ) as Record<string, string>;
  return `${parts.weekday}, ${parts.day}-${parts.month}-${parts.year} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}

/** An expired token: 401, code 190, subcode 463, Meta's "Session has expired" message. */
export function expiredToken(expiredAt: Date, now = new Date()): GraphError {
  return new GraphError(401, {
    error: {
      message: `Error validating access token: Session has expired on ${metaDate(expiredAt)}. The current time is ${metaDate(now)}.`,
      type: 'OAuthException',
      code: 190,
      error_subcode: 463,
      fbtrace_id: fbtraceId(),
    },
  });
}

/** The error object of a `failed` status webhook: `{code, title, message, error_data: {details}, href}`. */
export function statusErrorObject(code: number, opts: { title?: string; message?: string; details?: string } = {}) {
  const info = codeInfo(code);
  const title = opts.title ?? info.title;
  return {
    code,
    title,
    message: opts.message ?? title,
    error_data: { details: opts.details ?? info.details },
    href: ERROR_DOCS_URL,
  };
}
