import { expect, test } from 'bun:test';
import type { CommandName } from '../protocol/frames';
import { CommandRunner, type CommandFrameT } from './command-runner';
import { createLogger } from './logger';
import { ProviderError, type Provider } from './providers/types';
import { ResultCache, type ResultFrameT } from './result-cache';
import { waitFor } from './testing/fake-gateway';

/** Records calls; `send` waits for a release so tests can overlap commands. */
class SlowProvider implements Provider {
  readonly name = 'slow';
  readonly calls: string[] = [];
  private releases: (() => void)[] = [];
  async start() {}
  async stop() {}
  async execute(name: CommandName, args: unknown): Promise<Record<string, unknown>> {
    const { messageId } = args as { messageId: string };
    this.calls.push(`start ${messageId}`);
    if (messageId === 'boom') throw new Error('kaput');
    if (messageId === 'refused') throw new ProviderError('not_connected', 'Client not connected');
    await new Promise<void>((resolve) => this.releases.push(resolve));
    this.calls.push(`end ${messageId}`);
    return { messageId, name };
  }
  releaseAll() {
    for (const release of this.releases.splice(0)) release();
  }
}

const log = createLogger({ level: 'silent', instanceId: 1 });
const send = (commandId: number, messageId: string): CommandFrameT => ({
  type: 'command',
  commandId,
  name: 'send',
  args: { messageId, to: '15550002222', type: 'text', text: 'hi' },
});

function setup() {
  const provider = new SlowProvider();
  const runner = new CommandRunner(provider, new ResultCache(), log);
  const replies: { result: ResultFrameT; cached: boolean }[] = [];
  const run = (frame: CommandFrameT) => runner.run(frame, (result, cached) => replies.push({ result, cached }));
  return { provider, runner, replies, run };
}

test('commands run one at a time, in arrival order', async () => {
  const { provider, replies, run } = setup();
  const done = Promise.all([run(send(1, 'a')), run(send(2, 'b'))]);
  await waitFor(() => provider.calls.length === 1, 'a to start');
  await Bun.sleep(5);
  expect(provider.calls).toEqual(['start a']); // b waits while a runs
  provider.releaseAll();
  await waitFor(() => provider.calls.length === 3, 'b to start');
  provider.releaseAll();
  await done;
  expect(provider.calls).toEqual(['start a', 'end a', 'start b', 'end b']);
  expect(replies.map((r) => r.result.commandId)).toEqual([1, 2]);
});

test('a copy arriving while the original runs is answered from the cache, not run again', async () => {
  const { provider, replies, run } = setup();
  const first = run(send(5, 'a'));
  const copy = run(send(5, 'a'));
  await waitFor(() => provider.calls.length === 1, 'a to start');
  provider.releaseAll();
  await Promise.all([first, copy]);
  expect(provider.calls).toEqual(['start a', 'end a']);
  expect(replies.map((r) => r.cached)).toEqual([false, true]);
  expect(replies[1]!.result).toEqual(replies[0]!.result);
});

test('failures become results: invalid_args, provider codes, internal', async () => {
  const { provider, replies, run } = setup();
  await run({ type: 'command', commandId: 1, name: 'send', args: { messageId: 'x' } });
  await run(send(2, 'refused'));
  await run(send(3, 'boom'));
  expect(replies.map((r) => r.result)).toEqual([
    { type: 'result', commandId: 1, ok: false, error: { code: 'invalid_args', message: expect.stringContaining('send') } },
    { type: 'result', commandId: 2, ok: false, error: { code: 'not_connected', message: 'Client not connected' } },
    { type: 'result', commandId: 3, ok: false, error: { code: 'internal', message: expect.stringContaining('kaput') } },
  ]);
  expect(provider.calls).toEqual(['start refused', 'start boom']); // invalid args never reach the provider
});

test('a throwing reply does not stall later commands', async () => {
  const provider = new SlowProvider();
  const runner = new CommandRunner(provider, new ResultCache(), log);
  const seen: number[] = [];
  await runner.run(send(1, 'refused'), () => {
    throw new Error('socket gone');
  });
  await runner.run(send(2, 'refused'), (r) => seen.push(r.commandId));
  expect(seen).toEqual([2]);
});

test('held: commands wait for open(), then run in arrival order', async () => {
  const provider = new SlowProvider();
  const runner = new CommandRunner(provider, new ResultCache(), log, { held: true });
  const seen: number[] = [];
  const done = Promise.all([1, 2].map((id) => runner.run(send(id, 'refused'), (r) => seen.push(r.commandId))));
  await Bun.sleep(20);
  expect(provider.calls).toEqual([]);
  runner.open();
  await done;
  expect(seen).toEqual([1, 2]);
});

test('close(): the running command finishes and replies; queued and later ones never start', async () => {
  const { provider, runner, replies, run } = setup();
  void run(send(1, 'a'));
  void run(send(2, 'b'));
  await waitFor(() => provider.calls.length === 1, 'a to start');
  const closed = runner.close();
  void run(send(3, 'c'));
  provider.releaseAll();
  await closed;
  await Bun.sleep(10);
  expect(provider.calls).toEqual(['start a', 'end a']);
  expect(replies.map((r) => r.result.commandId)).toEqual([1]);
});

test('close() while held: nothing runs, and it resolves at once', async () => {
  const provider = new SlowProvider();
  const runner = new CommandRunner(provider, new ResultCache(), log, { held: true });
  void runner.run(send(1, 'a'), () => {});
  await runner.close();
  expect(provider.calls).toEqual([]);
});
