/** A control-API failure: HTTP status, machine code, message (answered as `{error, code}`). */
export class SimulatorError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Log = (level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
