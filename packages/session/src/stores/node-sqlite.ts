import type * as Sqlite from 'node:sqlite';

let sqlite: typeof Sqlite | undefined;

const isSqliteWarning = (warning: unknown, options: unknown) => {
  const type = typeof options === 'string' ? options : (options as { type?: unknown } | undefined)?.type;
  const text = typeof warning === 'string' ? warning : (warning as Error | undefined)?.message;
  return type === 'ExperimentalWarning' && typeof text === 'string' && text.startsWith('SQLite ');
};

/**
 * node:sqlite, loaded on first use (apps on Redis or MongoDB never load it). Node 22 prints "ExperimentalWarning:
 * SQLite is an experimental feature" when it loads, in every worker on every restart; the embedded store is a
 * supported choice here, so that one warning is dropped while the module loads. Every other warning passes.
 */
export function nodeSqlite(): typeof Sqlite {
  if (sqlite) return sqlite;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    if (isSqliteWarning(warning, rest[0])) return;
    return (emitWarning as (...a: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    sqlite = process.getBuiltinModule('node:sqlite');
  } finally {
    process.emitWarning = emitWarning;
  }
  return sqlite;
}
