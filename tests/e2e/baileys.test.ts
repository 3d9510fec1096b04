/**
 * The Baileys provider end to end on the simulator, with the same suites as
 * whatsmeow (tests/e2e/engines/): linking by QR and code, kill -9 and gateway
 * SIGKILL restored, moves to another process node and to a docker node,
 * faults, unlink; every message type both ways with receipts and media; and a
 * Baileys number and a whatsmeow number talking to each other.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { freePort } from '../../gateway/src/lib/net';
import { gatewayApi, type GatewayProcess } from '../support/gateway-process';
import { until } from '../support/poll';
import { webhookReceiver, type Receiver } from '../support/receiver';
import * as wm from '../support/whatsmeow';
import { BAILEYS } from './engines/engines';
import { lifecycleSuite } from './engines/lifecycle';
import { messagingSuite } from './engines/messaging';

lifecycleSuite(BAILEYS);
messagingSuite(BAILEYS);

const cleanup: (() => Promise<unknown>)[] = [];
let stack: wm.WhatsmeowStack;
let g: GatewayProcess;
let key: string;
let receiver: Receiver;

beforeAll(async () => {
  stack = await wm.whatsmeowStack(cleanup, { env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' } });
  ({ g, key } = await wm.startStackGateway(stack, cleanup, 'mixed@example.com'));
  receiver = webhookReceiver(await freePort(), cleanup);
});

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
});

test('a whatsmeow number and a Baileys number on one gateway message each other', async () => {
  const numbers: Record<string, { phone: string; id: number }> = {};
  for (const provider of ['whatsmeow', 'baileys']) {
    const n = await wm.newNumber(stack, g, key, { provider });
    await wm.linkByQr(stack, g, key, n.phone, n.id);
    const hook = await gatewayApi(g, 'POST', `/api/instances/${n.id}/webhooks`, key, { url: receiver.url(`/${n.id}`), events: ['message.received'] });
    receiver.secrets.set(`/${n.id}`, hook.body.secret);
    numbers[provider] = n;
  }
  const { whatsmeow, baileys } = numbers as { whatsmeow: { phone: string; id: number }; baileys: { phone: string; id: number } };
  const arrives = (at: number, text: string) =>
    until(`"${text}" at instance ${at}`, () => receiver.delivered.find((d) => d.instance === at && d.data.text === text), 20_000, 50);
  expect((await gatewayApi(g, 'POST', `/api/instances/${whatsmeow.id}/send`, key, { to: baileys.phone, text: 'from whatsmeow' })).status).toBe(200);
  expect((await arrives(baileys.id, 'from whatsmeow')).data).toMatchObject({ from: whatsmeow.phone, type: 'text' });
  expect((await gatewayApi(g, 'POST', `/api/instances/${baileys.id}/send`, key, { to: whatsmeow.phone, text: 'from baileys' })).status).toBe(200);
  expect((await arrives(whatsmeow.id, 'from baileys')).data).toMatchObject({ from: baileys.phone, type: 'text' });
  expect(receiver.forged).toBe(0);
}, 120_000);
