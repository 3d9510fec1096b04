/**
 * The workers the shared suites in this folder run against the simulator,
 * and what differs between them. Each worker's test file calls the suites
 * with its WorkerUnderTest (as tests/e2e/engines/ does for the gateway).
 */
import { ensureNodeWorkerBundle, ensureWhatsmeowBinary, NODE_BINARY, WHATSMEOW_BINARY, WORKER_NODE_BUNDLE } from '../../../tests/conformance/workers';
import type { RunningSimulator } from '../server';

export interface WorkerUnderTest {
  /** The provider's name, as the tests' titles start. */
  name: string;
  /** Builds what it runs (once per process). */
  prepare(): Promise<void>;
  /** Its program (run by runWorker in ../testing.ts with the WGS_* variables). */
  argv: string[];
  /** What it is told of the simulator, on top of the WGS_* variables: the address, and the media server's CA. */
  env(sim: RunningSimulator): Record<string, string>;
  /** How many texts each burst test sends (worker → phone and phone → worker). */
  burst: number;
  /** Whether the test checks the copy (DeviceSentMessage) on the sending account's own phone. */
  ownPhoneCopy: boolean;
  /** The warning and error lines of its log (a clean run has none). */
  logProblems(log: string): string[];
}

const lines = (log: string) => log.split('\n');

export const WHATSMEOW: WorkerUnderTest = {
  name: 'whatsmeow',
  prepare: ensureWhatsmeowBinary,
  argv: [WHATSMEOW_BINARY],
  env: (sim) => ({
    WHATSMEOW_WS_URL: sim.wsUrl,
    WHATSMEOW_ROOT_PUBLIC_KEY: sim.rootPublicKey,
    // Go's standard setting (crypto/x509 reads it on Linux): media uploads and downloads are https://.
    SSL_CERT_FILE: sim.mediaCaFile,
  }),
  burst: 200,
  ownPhoneCopy: true,
  // zerolog: "level":"warn"|"error"; the simulator's root key and the 30 s linking grace are expected notes.
  logProblems: (log) =>
    lines(log).filter((l) => /"level":"(warn|error)"/.test(l) && !l.includes('non-WhatsApp root key') && !l.includes('no connection within 30 s of linking')),
};

export const BAILEYS: WorkerUnderTest = {
  name: 'baileys',
  prepare: ensureNodeWorkerBundle,
  // npm baileys, bundled for Node (scripts/build-worker-node) and run by Node 24.
  argv: [NODE_BINARY, WORKER_NODE_BUNDLE],
  env: (sim) => ({
    BAILEYS_WS_URL: sim.wsUrl,
    // Node's standard setting: media uploads and downloads are https://.
    NODE_EXTRA_CA_CERTS: sim.mediaCaFile,
  }),
  burst: 50,
  ownPhoneCopy: false,
  // pino: "level":50 (error), 60 (fatal); WhatsApp's stream error 515 right after pairing is its "restart required", which Baileys logs as an error.
  logProblems: (log) => lines(log).filter((l) => /"level":(50|60)/.test(l) && !/"attrs":\{"code":"515"\}\},"msg":"stream errored out"/.test(l)),
};
