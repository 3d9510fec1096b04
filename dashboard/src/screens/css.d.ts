/** CSS files are imported for their side effect (Bun's bundler emits them beside the script). */
declare module '*.css';
