/**
 * Bun macros for /docs: imported `with { type: 'macro' }`, they run when the
 * gateway is transpiled or bundled, and their results are inlined. So the
 * Scalar API reference that /docs loads comes from the installed
 * `@scalar/api-reference` package (a gateway dependency), never a CDN, and a
 * bundle (`bun build`, as in the gateway image, which has no node_modules)
 * carries it inside whatever the install layout was when it was built.
 *
 * The package exports no subpath for its browser bundle, so it is found next to
 * the package's main entry (`dist/index.js`).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function packageFile(relative: string): string {
  return fileURLToPath(new URL(relative, import.meta.resolve('@scalar/api-reference')));
}

/** `dist/browser/standalone.js`: the self-contained build that reads `#api-reference[data-configuration]`. */
export function scalarStandaloneSource(): string {
  // The source map is not served; drop the comment that would make DevTools ask for it.
  return readFileSync(packageFile('./browser/standalone.js'), 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
}

/** The installed package's version: part of the script's URL, so a new version is never served from a stale cache. */
export function scalarVersion(): string {
  return (JSON.parse(readFileSync(packageFile('../package.json'), 'utf8')) as { version: string }).version;
}
