import { afterEach, describe, expect, test } from 'bun:test';
import { Writable } from 'node:stream';
import { CloseCodes, PROTOCOL_VERSION, type CommandName, type WorkerEvent } from '../protocol/frames';
import { GatewayConnection, type ConnectionOptions } from './connection';
import { createLogger } from './logger';
import { ProviderError, type Provider, type SessionReporter } from './providers/types';
import { FakeGateway, waitFor, type FakeGatewayOptions, type GatewayConn } from './testing/fake-gateway';
import { WORKER_VERSION } from './version';

const TOKEN = 'wgs-test-token-do-not-log';

/** Counts executions; commands named in `hold` wait for release(). */
class FakeProvider implements Provider {
  readonly name = 'fake';
  ctx!: SessionReporter;
  readonly executed: { name: CommandName; args: unknown }[] = [];
  hold = false;
  private releases: (() => void)[] = [];

  /** The connection's reporter is all this provider uses; the store is main's business. */
  async start(ctx: SessionReporter) {
    this.ctx = ctx;
    ctx.setState('connected', 'fake engine');
  }
  async stop() {}
  async execute(name: CommandName, args: unknown): Promise<Record<string, unknown>> {
    this.executed.push({ name, args });
    if (this.hold) await new Promise<void>((resolve) => this.releases.push(resolve));
    if (name === 'logout') throw new ProviderError('not_connected', 'Client not connected');
    return { echo: args };
  }
  release() {
    for (const r of this.releases.splice(0)) r();
  }
}

const status = (messageId: string): WorkerEvent => ({
  type: 'message.status',
  data: { messageId, status: 'delivered', timestamp: '2024-01-01T00:00:00.000Z' },
});
const sendArgs = (messageId: string) => ({ messageId, to: '15550002222', type: 'text', text: 'hi' });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A debug logger of instance 42 whose lines are kept in `logLines`. */
function capturedLog() {
  const logLines: string[] = [];
  const log = createLogger(
    { level: 'debug', instanceId: 42 },
    new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );
  return { log, logLines };
}

async function setup(opts: { gateway?: FakeGatewayOptions; conn?: Partial<ConnectionOptions> } = {}) {
  const gateway = new FakeGateway(opts.gateway);
  cleanups.push(() => gateway.stop());
  const { log, logLines } = capturedLog();
  const provider = new FakeProvider();
  const exits: number[] = [];
  const connection = new GatewayConnection({
    urls: [gateway.workerUrl],
    instanceId: 42,
    token: TOKEN,
    provider,
    log,
    exit: (code) => exits.push(code),
    backoff: { baseMs: 10, capMs: 40, jitter: 0.2 },
    ...opts.conn,
  });
  cleanups.push(() => connection.stop());
  await provider.start(connection.context);
  connection.start();
  return { gateway, provider, connection, exits, logLines };
}

/** Ping from the gateway and wait for the pong: every frame the worker sent before it has arrived. */
async function sync(conn: GatewayConn): Promise<void> {
  const t = Math.random();
  conn.send({ type: 'ping', t });
  await waitFor(() => conn.ofType('pong').some((p) => p.t === t), 'pong');
}

/** Frames after the hello (and after any sync pongs), without pings and pongs. */
const payload = (conn: GatewayConn) => conn.frames.filter((f) => f.type !== 'hello' && f.type !== 'ping' && f.type !== 'pong');

describe('handshake', () => {
  test('hello is the first frame, with the protocol, instance, token, provider and version', async () => {
    const { gateway, provider } = await setup();
    expect(provider.ctx.phone()).toBeUndefined();
    const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello');
    expect(conn.frames[0]).toEqual({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      instanceId: 42,
      token: TOKEN,
      provider: 'fake',
      workerVersion: WORKER_VERSION,
    });
  });

  test('after welcome the worker sends its state and knows its phone', async () => {
    const { gateway, provider, connection } = await setup({ gateway: { phone: '15557654321' } });
    const conn = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'a state');
    expect(conn.frames.slice(0, 2).map((f) => f.type)).toEqual(['hello', 'state']);
    expect(conn.ofType('state')).toEqual([{ type: 'state', state: 'connected', reason: 'fake engine' }]);
    expect(provider.ctx.phone()).toBe('15557654321');
    expect(connection.ready).toBe(true);
    expect(conn.invalid).toEqual([]);
  });

  test('before welcome only hello and pongs go out; the welcome flushes the latest state, the QR and events', async () => {
    const { gateway, provider } = await setup({ gateway: { autoWelcome: false } });
    const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello');
    provider.ctx.setState('starting');
    provider.ctx.setState('qr', 'waiting for QR scan');
    provider.ctx.setQr('old-code', new Date(Date.now() + 60_000));
    provider.ctx.setQr('new-code', new Date(Date.now() + 60_000));
    provider.ctx.emit(status('m-1'));
    provider.ctx.emit(status('m-2'));
    await sync(conn);
    expect(conn.frames.map((f) => f.type)).toEqual(['hello', 'pong']);

    conn.send({ type: 'welcome', protocol: PROTOCOL_VERSION, instanceId: 42, phone: '15550001111' });
    await sync(conn);
    const flushed = payload(conn);
    expect(flushed.map((f) => f.type)).toEqual(['state', 'qr', 'event', 'event']);
    expect(flushed[0]).toEqual({ type: 'state', state: 'qr', reason: 'waiting for QR scan' });
    expect(flushed[1]).toMatchObject({ type: 'qr', code: 'new-code' });
    expect(conn.ofType('event').map((e) => e.event)).toEqual([status('m-1'), status('m-2')]);
    expect(conn.invalid).toEqual([]);
  });

  test('a QR is not flushed once the state moved on from qr', async () => {
    const { gateway, provider } = await setup({ gateway: { autoWelcome: false } });
    const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello');
    provider.ctx.setState('qr');
    provider.ctx.setQr('code', new Date(Date.now() + 60_000));
    provider.ctx.setState('connected', 'paired');
    conn.send({ type: 'welcome', protocol: PROTOCOL_VERSION, instanceId: 42, phone: '15550001111' });
    await sync(conn);
    expect(payload(conn)).toEqual([{ type: 'state', state: 'connected', reason: 'paired' }]);
  });
});

describe('commands', () => {
  test('a command gets a result; bad args and provider errors become failed results', async () => {
    const { gateway, provider } = await setup();
    const conn = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    conn.send({ type: 'command', commandId: 1, name: 'send', args: sendArgs('m-1') });
    conn.send({ type: 'command', commandId: 2, name: 'send', args: { messageId: 'm-2', to: 'nope', type: 'text', text: 'x' } });
    conn.send({ type: 'command', commandId: 3, name: 'logout', args: {} });
    const results = await waitFor(() => conn.ofType('result').length >= 3 && conn.ofType('result'), 'three results');
    expect(results).toEqual([
      { type: 'result', commandId: 1, ok: true, data: { echo: sendArgs('m-1') } },
      { type: 'result', commandId: 2, ok: false, error: { code: 'invalid_args', message: expect.stringContaining('/to') } },
      { type: 'result', commandId: 3, ok: false, error: { code: 'not_connected', message: 'Client not connected' } },
    ]);
    expect(provider.executed.map((e) => e.name)).toEqual(['send', 'logout']);
  });

  test('the same commandId twice gets the same result and runs once, also across a reconnect', async () => {
    const { gateway, provider } = await setup();
    const first = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    const command = { type: 'command', commandId: 7, name: 'send', args: sendArgs('m-7') } as const;
    first.send(command);
    first.send(command);
    const results = await waitFor(() => first.ofType('result').length >= 2 && first.ofType('result'), 'two results');
    expect(results[1]).toEqual(results[0]!);
    expect(results[0]).toMatchObject({ commandId: 7, ok: true });

    first.close(1011, 'gateway restarting');
    const second = await waitFor(() => gateway.connections[1]?.ofType('state').length && gateway.connections[1], 'reconnect');
    second.send(command);
    const again = await waitFor(() => second.ofType('result')[0], 'the cached result');
    expect(again).toEqual(results[0]!);
    expect(provider.executed).toHaveLength(1);
  });

  test('a result finished while disconnected is flushed after the next welcome', async () => {
    // A slow redial, so the result is ready before the next welcome.
    const { gateway, provider, connection, logLines } = await setup({ conn: { backoff: { baseMs: 200, capMs: 200, jitter: 0 } } });
    const first = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    provider.hold = true;
    first.send({ type: 'command', commandId: 11, name: 'send', args: sendArgs('m-11') });
    await waitFor(() => provider.executed.length === 1, 'execution to start');
    first.close(1011, 'gone');
    await waitFor(() => !connection.ready, 'the worker to notice the close');
    provider.release();
    const second = await waitFor(() => gateway.connections[1]?.ofType('result').length && gateway.connections[1], 'flushed result');
    expect(second.ofType('result')).toEqual([{ type: 'result', commandId: 11, ok: true, data: { echo: sendArgs('m-11') } }]);
    expect(first.ofType('result')).toEqual([]);
    const flushLog = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'welcomed by gateway; flushed' && l.results === 1);
    expect(flushLog).toBeDefined();
  });
});

describe('events', () => {
  test('events are resent after reconnects until acked, then never again', async () => {
    const { gateway, provider, connection } = await setup();
    const first = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    provider.ctx.emit(status('m-1'));
    provider.ctx.emit(status('m-2'));
    const sent = await waitFor(() => first.ofType('event').length >= 2 && first.ofType('event'), 'two events');

    first.close(1011, 'no ack for you');
    const second = await waitFor(() => (gateway.connections[1]?.ofType('event').length ?? 0) >= 2 && gateway.connections[1], 'resend');
    expect(second.ofType('event')).toEqual(sent);
    second.send({ type: 'ack', eventId: sent[0]!.eventId });
    await sync(second);
    expect(connection.events.size).toBe(1);

    second.close(1011, 'again');
    const third = await waitFor(() => gateway.connections[2]?.ofType('state').length && gateway.connections[2], 'third connection');
    await sync(third);
    expect(third.ofType('event')).toEqual([sent[1]!]);
    third.send({ type: 'ack', eventId: sent[1]!.eventId });
    await sync(third);

    third.close(1011, 'once more');
    const fourth = await waitFor(() => gateway.connections[3]?.ofType('state').length && gateway.connections[3], 'fourth connection');
    await sync(fourth);
    expect(fourth.ofType('event')).toEqual([]);
    expect(connection.events.size).toBe(0);
  });
});

describe('closing', () => {
  test.each([
    [CloseCodes.unauthorized, 1],
    [CloseCodes.unsupportedProtocol, 1],
    [CloseCodes.replaced, 0],
  ])('close %i makes the worker exit with %i and not reconnect', async (code, exitCode) => {
    const { gateway, exits } = await setup();
    const conn = await waitFor(() => gateway.connections[0]?.frames.length && gateway.connections[0], 'a hello');
    conn.close(code, 'go away');
    await waitFor(() => exits.length > 0, 'the exit');
    expect(exits).toEqual([exitCode]);
    await Bun.sleep(100); // several backoff periods (10-40 ms)
    expect(gateway.connections).toHaveLength(1);
  });

  test('other closes reconnect with backoff', async () => {
    const { gateway, exits } = await setup();
    const conn = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    conn.close(CloseCodes.badFrame, 'bad frame');
    await waitFor(() => gateway.connections[1]?.ofType('state').length, 'a reconnect');
    expect(exits).toEqual([]);
  });

  test('stop() closes with 1000 and does not reconnect', async () => {
    const { gateway, connection } = await setup();
    const conn = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    await connection.stop();
    const closed = await waitFor(() => conn.closed, 'the close');
    expect(closed.code).toBe(1000);
    await Bun.sleep(100);
    expect(gateway.connections).toHaveLength(1);
    expect(connection.ready).toBe(false);
  });
});

describe('liveness', () => {
  test('gateway pings are answered; invalid frames are logged and ignored', async () => {
    const { gateway, logLines } = await setup();
    const conn = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    conn.ws.send('not json');
    conn.ws.send(JSON.stringify({ type: 'command', commandId: 'x', name: 'send', args: {} }));
    conn.ws.send(JSON.stringify({ type: 'teleport' }));
    await sync(conn);
    expect(gateway.connections).toHaveLength(1);
    expect(conn.ofType('result')).toEqual([]);
    expect(logLines.filter((l) => l.includes('matches no schema'))).toHaveLength(3);
  });

  test('the worker pings the gateway while connected', async () => {
    const { gateway } = await setup({ conn: { pingIntervalMs: 20 } });
    const conn = await waitFor(() => (gateway.connections[0]?.ofType('ping').length ?? 0) >= 2 && gateway.connections[0], 'pings');
    expect(conn.ofType('ping')[0]!.t).toBeNumber();
  });

  test("right after the welcome the worker pings with its process's memory and CPU time", async () => {
    const { gateway } = await setup({ conn: { pingIntervalMs: 60_000 } });
    const conn = await waitFor(() => gateway.connections[0]?.ofType('ping').length && gateway.connections[0], 'the first ping');
    // After the flush: the state comes first.
    expect(conn.frames.slice(0, 3).map((f) => f.type)).toEqual(['hello', 'state', 'ping']);
    const { usage } = conn.ofType('ping')[0]!;
    expect(usage!.rssBytes).toBeGreaterThan(1024 * 1024);
    expect(Number.isInteger(usage!.rssBytes)).toBe(true);
    expect(usage!.cpuSeconds).toBeGreaterThan(0);
    expect(conn.invalid).toEqual([]);
  });

  test('a failing usage measurement still pings, without usage', async () => {
    const usage = () => {
      throw new Error('no /proc');
    };
    const { gateway } = await setup({ conn: { pingIntervalMs: 20, usage } });
    const conn = await waitFor(() => (gateway.connections[0]?.ofType('ping').length ?? 0) >= 2 && gateway.connections[0], 'pings');
    expect(conn.ofType('ping')[0]).toEqual({ type: 'ping', t: expect.any(Number) });
  });

  test('a silent gateway is dropped and redialled; answered pings keep the socket', async () => {
    // 500 ms: the silent gateway is dropped whatever the machine's stalls.
    const silent = await setup({ gateway: { answerPings: false }, conn: { pingIntervalMs: 20, idleTimeoutMs: 500 } });
    await waitFor(() => silent.gateway.connections[1]?.ofType('state').length, 'a redial after the idle timeout', 3_000);

    // 1500 ms: above a loaded machine's stalls, which would drop even an answered socket.
    const alive = await setup({ conn: { pingIntervalMs: 20, idleTimeoutMs: 1_500 } });
    await waitFor(() => (alive.gateway.connections[0]?.ofType('ping').length ?? 0) >= 2, 'pings');
    await Bun.sleep(3_000); // twice the idle timeout: a dropped socket would show
    expect(alive.connection.ready).toBe(true);
    expect(alive.gateway.connections).toHaveLength(1);
  });

  test('a dial that never opens is abandoned and retried; stop() ends it', async () => {
    // A TCP listener that never answers the upgrade request: the socket stays CONNECTING.
    let dials = 0;
    const blackhole = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { open: () => void (dials += 1), data() {} } });
    cleanups.push(async () => blackhole.stop(true));
    const log = createLogger({ level: 'silent', instanceId: 42 });
    const connection = new GatewayConnection({
      urls: [`ws://127.0.0.1:${blackhole.port}/internal/workers/ws`],
      instanceId: 42,
      token: TOKEN,
      provider: new FakeProvider(),
      log,
      idleTimeoutMs: 80,
      backoff: { baseMs: 10, capMs: 10, jitter: 0 },
    });
    connection.start();
    await waitFor(() => dials >= 2, 'a second dial', 3_000);
    await connection.stop();
    const after = dials;
    await Bun.sleep(150);
    expect(dials).toBe(after);
  });

  test('the token never reaches the logs', async () => {
    const { gateway, provider, logLines } = await setup();
    const conn = await waitFor(() => gateway.connections[0]?.ofType('state').length && gateway.connections[0], 'welcome');
    provider.ctx.emit(status('m-1'));
    conn.close(1011, 'bye');
    await waitFor(() => gateway.connections[1]?.ofType('event').length, 'resend');
    expect(logLines.length).toBeGreaterThan(3);
    expect(logLines.join('\n')).not.toContain(TOKEN);
  });
});

describe('several gateway URLs (replicas)', () => {
  /** A worker given `urls`; a backoff of a minute, so any wait between URLs of one round would time the test out. */
  function worker(urls: string[], conn: Partial<ConnectionOptions> = {}) {
    const { log, logLines } = capturedLog();
    const provider = new FakeProvider();
    const connection = new GatewayConnection({
      urls,
      instanceId: 42,
      token: TOKEN,
      provider,
      log,
      exit: () => {},
      backoff: { baseMs: 60_000, capMs: 60_000, jitter: 0 },
      ...conn,
    });
    cleanups.push(() => connection.stop());
    const connectedTo = () =>
      logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'connected to gateway; saying hello').map((l) => l.url as string);
    return { provider, connection, connectedTo };
  }

  async function liveGateway() {
    const gateway = new FakeGateway();
    cleanups.push(() => gateway.stop());
    return gateway;
  }

  async function deadUrl() {
    const gone = new FakeGateway();
    const url = gone.workerUrl;
    await gone.stop();
    return url;
  }

  test('a dead first URL is skipped at once; when the gateway dies the next one takes over, with the token, state and unacked events', async () => {
    const dead = await deadUrl();
    const second = await liveGateway();
    const third = await liveGateway();
    const secondUrl = second.workerUrl; // the port is gone from the server once stopped
    const { provider, connection, connectedTo } = worker([dead, secondUrl, third.workerUrl]);
    await provider.start(connection.context);
    connection.start();

    const first = await waitFor(() => second.connections[0]?.ofType('state').length && second.connections[0], 'a welcome from the second URL', 3_000);
    provider.ctx.emit(status('m-1'));
    const [event] = await waitFor(() => first.ofType('event').length && first.ofType('event'), 'the event');

    await second.stop(); // the replica is gone, without a close handshake worth the name
    const next = await waitFor(() => third.connections[0]?.ofType('event').length && third.connections[0], 'the event again on the third URL', 3_000);
    expect(next.frames[0]).toMatchObject({ type: 'hello', instanceId: 42, token: TOKEN });
    expect(next.ofType('state')).toEqual([{ type: 'state', state: 'connected', reason: 'fake engine' }]);
    expect(next.ofType('event')).toEqual([event!]);
    expect(connection.ready).toBe(true);
    expect(connectedTo()).toEqual([secondUrl, third.workerUrl]);
    expect(first.invalid).toEqual([]);
    expect(next.invalid).toEqual([]);
  });

  test('a connected worker stays where it is while every other URL is alive too', async () => {
    const a = await liveGateway();
    const b = await liveGateway();
    const { provider, connection } = worker([a.workerUrl, b.workerUrl], { pingIntervalMs: 20 });
    await provider.start(connection.context);
    connection.start();
    const conn = await waitFor(() => (a.connections[0]?.ofType('ping').length ?? 0) >= 5 && a.connections[0], 'pings on the first URL');
    expect(conn.closed).toBeUndefined();
    expect(a.connections).toHaveLength(1);
    expect(b.connections).toHaveLength(0);
  });

  test('a dial that never opens is abandoned for the next URL after the dial timeout', async () => {
    const blackhole = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    cleanups.push(async () => blackhole.stop(true));
    const live = await liveGateway();
    // The dial timeout bounds the live URL's dial too: 1 s, as a stall past it would drop that one and wait the minute's backoff.
    const { provider, connection, connectedTo } = worker([`ws://127.0.0.1:${blackhole.port}/internal/workers/ws`, live.workerUrl], { dialTimeoutMs: 1_000 });
    await provider.start(connection.context);
    connection.start();
    await waitFor(() => live.connections[0]?.ofType('state').length, 'a welcome from the second URL', 5_000);
    expect(connectedTo()).toEqual([live.workerUrl]);
  });
});
