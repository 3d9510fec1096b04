import { Value } from '@sinclair/typebox/value';
import { Commands, checkArgs, type CommandName } from '../protocol/frames';

/**
 * Why `args` do not fit the command's schema, e.g. "/to: Expected string to
 * match ..."; undefined when they fit. Callers report it as `invalid_args`.
 */
export function argsProblem(name: CommandName, args: unknown): string | undefined {
  if (!Object.hasOwn(Commands, name)) return `unknown command ${JSON.stringify(name)}`;
  if (checkArgs(name, args)) return undefined;
  const first = Value.Errors(Commands[name], args).First();
  if (!first) return `invalid arguments for ${name}`;
  return `${first.path || 'args'}: ${first.message}`;
}
