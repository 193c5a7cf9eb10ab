import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// The sources run as .ts (type stripping) and the build as .js: a module of this package keeps this file's extension.
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/**
 * Loads a store driver, or a module of this package that extends one, synchronously and only when a store that
 * needs it is created: a worker on SQLite never pays for mongodb, ioredis or jose. Relative specifiers are
 * relative to src/ and name the .ts file. ESM modules load through require(esm) (no top-level await in them),
 * so they are the same instances an `import` elsewhere in the process gets.
 */
export function load<T>(specifier: string): T {
  return require(specifier.startsWith('.') ? specifier.replace(/\.ts$/, ext) : specifier) as T;
}
