#!/usr/bin/env node
// The `create-cluster-session` binary (`npm create cluster-session@latest my-app`). Published builds run
// dist/index.js; in a source checkout it runs src/index.ts with the `@cluster-session/source` export
// condition added by a resolve hook, as the cluster-session binary does.
import { existsSync } from 'node:fs';
import module from 'node:module';

// Before anything else: on an older Node the rest fails with errors that never mention the version.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `create-cluster-session needs Node.js 22.18 or newer (24 LTS recommended), found ${process.version}. ` +
      'Get Node 24: `nvm install 24`, or https://nodejs.org/en/download\n',
  );
  process.exit(1);
}

const dist = new URL('../dist/index.js', import.meta.url);
const src = new URL('../src/index.ts', import.meta.url);
// Installed (under node_modules, where Node will not strip types): dist. In this repository: always the sources,
// even when a pack or the release check left a dist/ behind (a stale dist mixed with sources misbehaves).
const checkout = !src.pathname.includes('/node_modules/') && existsSync(src);
let create;
if (!checkout && existsSync(dist)) {
  create = await import(dist.href);
} else {
  if (!process.execArgv.some((a) => a.startsWith('--conditions=@cluster-session/source'))) {
    module.registerHooks({
      resolve(specifier, context, next) {
        return next(specifier, { ...context, conditions: [...context.conditions, '@cluster-session/source'] });
      },
    });
  }
  create = await import(src.href);
}
process.exitCode = await create.main(process.argv.slice(2));
