/**
 * The whatsmeow provider's session life end to end on the simulator
 * (tests/e2e/engines/lifecycle.ts): QR and code linking, kill -9 and gateway
 * SIGKILL restored, moves, faults, unlink, one connection per device.
 */
import { WHATSMEOW } from './engines/engines';
import { lifecycleSuite } from './engines/lifecycle';

lifecycleSuite(WHATSMEOW);
