/**
 * What a plan can turn off, each enforced where the API offers it. A plan's
 * `features` null allows every one; a list allows only those named. Asking
 * for one outside the list is 403 `not_in_plan`, before anything is written.
 */
export const FEATURES = {
  /** Webhook subscriptions: POST /api/instances/:id/webhooks and the `webhook` field of instance create. Subscriptions made before a downgrade keep delivering until deleted. */
  webhooks: 'webhook subscriptions (POST …/webhooks, the create `webhook` field)',
  /** Sending media: image, video, audio, document and sticker messages (text, location, contact, reactions and the rest stay allowed). */
  media: 'sending media messages (image, video, audio, document, sticker)',
  /** Choosing the node: the create `node` field and the migrate `target_node` field. Without it the scheduler places and moves instances. */
  node_selection: 'choosing a node by name (create `node`, migrate `target_node`)',
} as const;

export type Feature = keyof typeof FEATURES;
export const FEATURE_NAMES = Object.keys(FEATURES) as Feature[];

export function isFeature(name: string): name is Feature {
  return Object.hasOwn(FEATURES, name);
}
