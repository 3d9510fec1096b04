/** Sent in `hello.workerVersion`, so the gateway can log which worker build it talks to. */
export const WORKER_VERSION = '0.1.0';
