// node-forge (npm, pinned in package.json) ships no types; the simulator uses only its X.509 builder (media/tls.ts).
declare module 'node-forge';
