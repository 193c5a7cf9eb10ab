/** Writes one starter variant into a new directory: refused when the directory exists and is not empty. */
import fs from 'node:fs';
import path from 'node:path';
import { CreateTargetError } from './errors.ts';

/** npm's rules for a package name, from a directory name: lower case, no spaces or leading dots/underscores. */
export function packageName(dir: string): string {
  const name = path
    .basename(path.resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9._~-]+/g, '-')
    .replace(/^[._-]+/, '')
    .slice(0, 214);
  return name || 'my-app';
}

function assertUsable(target: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch {
    return;
  }
  if (!stat.isDirectory()) throw new CreateTargetError(`${target} exists and is not a directory: nothing was written. Choose a new directory name.`);
  const entries = fs.readdirSync(target);
  if (entries.length > 0) {
    const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? `, … (${entries.length} entries)` : '');
    throw new CreateTargetError(`${target} is not empty (${shown}): nothing was written. Choose a new directory name, or empty it first.`);
  }
}

function copy(from: string, to: string, render: (rel: string, text: string) => string, rel = ''): void {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    // npm never packs a .gitignore (it reads it as .npmignore), so the template carries it as `gitignore`.
    const name = rel === '' && entry.name === 'gitignore' ? '.gitignore' : entry.name;
    const src = path.join(from, entry.name);
    if (entry.isDirectory()) copy(src, path.join(to, name), render, path.join(rel, name));
    else fs.writeFileSync(path.join(to, name), render(path.join(rel, name), fs.readFileSync(src, 'utf8')));
  }
}

export interface ScaffoldOptions {
  /** One variant's template directory (template/js or template/ts). */
  template: string;
  target: string;
  typescript: boolean;
}

/** Copies the template with the app's name in package.json and README.md; returns the package name. */
export function scaffold(o: ScaffoldOptions): string {
  const target = path.resolve(o.target);
  assertUsable(target);
  const name = packageName(target);
  const ext = o.typescript ? 'ts' : 'js';
  copy(o.template, target, (rel, text) => {
    if (rel === 'package.json') return `${JSON.stringify({ ...JSON.parse(text), name }, null, 2)}\n`;
    if (rel === 'README.md') return text.replaceAll('{{name}}', name).replaceAll('{{ext}}', ext).replaceAll('{{language}}', o.typescript ? 'TypeScript' : 'JavaScript');
    return text;
  });
  return name;
}
