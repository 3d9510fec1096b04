/**
 * The whatsmeow provider's messages end to end on the simulator
 * (tests/e2e/engines/messaging.ts): every type both ways, receipts, media,
 * two numbers talking, sends across a kill and a move, 1,000 texts.
 */
import { WHATSMEOW } from './engines/engines';
import { messagingSuite } from './engines/messaging';

messagingSuite(WHATSMEOW);
