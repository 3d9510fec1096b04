import { Value } from '@sinclair/typebox/value';
import { Type, type TSchema } from '@sinclair/typebox';
import { Commands, SEND_MESSAGE_TYPES, SendMessageTypes, checkArgs, type CommandName } from '../protocol/frames';

/**
 * Why `args` do not fit the command's schema, e.g. "/to: Expected string to
 * match ..."; undefined when they fit. Callers report it as `invalid_args`.
 */
export function argsProblem(name: CommandName, args: unknown): string | undefined {
  if (!Object.hasOwn(Commands, name)) return `unknown command ${JSON.stringify(name)}`;
  if (checkArgs(name, args)) return undefined;
  const first = Value.Errors(schemaFor(name, args), args).First();
  if (!first) return `invalid arguments for ${name}`;
  return `${first.path || 'args'}: ${first.message}`;
}

/** For a send, the schema of its `type`, so the problem named is about that type's fields, not "expected union value". */
function schemaFor(name: CommandName, args: unknown): TSchema {
  if (name !== 'send') return Commands[name];
  const type = (args as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !(SEND_MESSAGE_TYPES as string[]).includes(type)) {
    return Type.Object({ type: Type.Union(SEND_MESSAGE_TYPES.map((t) => Type.Literal(t))) });
  }
  return SendMessageTypes[type as keyof typeof SendMessageTypes];
}
