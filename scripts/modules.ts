/**
 * The module graph of packages/*\/src, read with the TypeScript parser (no type check, no build):
 *
 *   node scripts/modules.ts check   import cycles (must be 0), undeclared or unused workspace dependencies, and
 *                                   exports nobody imports (each must be used by another file or be public)
 *   node scripts/modules.ts graph   the package graph (runtime dependencies between workspace packages)
 *   node scripts/modules.ts files   every source file with its line count
 *
 * Written here rather than taken from madge or knip: both resolve through their own resolvers, which do not
 * follow the `@cluster-session/source` export condition to the `.ts` sources, and neither checks what this
 * repository needs as a whole (src imports against package.json, one pass over tests and examples as users).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// `--root DIR` checks another tree (the script's own test builds one).
const rootFlag = process.argv.indexOf('--root');
const ROOT = rootFlag === -1 ? REPO : path.resolve(process.argv[rootFlag + 1] ?? '.');

/**
 * Problems known and owned by work in progress elsewhere; each must still occur (a stale entry fails the check,
 * so it is removed once fixed). Keep this list short and say who owns each entry.
 */
const KNOWN: ReadonlyArray<{ problem: string; why: string }> = [];
const CONDITION = '@cluster-session/source';
const SCOPE = '@cluster-session/';

interface Pkg {
  name: string;
  dir: string;
  deps: string[];
  devDeps: string[];
  /** Subpath ('.', './stores') -> absolute source file. */
  entries: Map<string, string>;
}

interface Edge {
  to: string;
  typeOnly: boolean;
  /** Names taken from the target; '*' for a namespace import or `export *`. */
  names: string[];
}

interface Mod {
  file: string;
  edges: Edge[];
  /** Exported names and whether each is re-exported from elsewhere (then the source module owns it). */
  exports: Map<string, { local: boolean; typeOnly: boolean }>;
  /** `export * from` targets. */
  starFrom: string[];
  text: string;
}

const rel = (file: string) => path.relative(ROOT, file);

function walk(dir: string, out: string[] = []): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.(ts|mts)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function readPackages(): Map<string, Pkg> {
  const pkgs = new Map<string, Pkg>();
  for (const name of fs.readdirSync(path.join(ROOT, 'packages'))) {
    const dir = path.join(ROOT, 'packages', name);
    const file = path.join(dir, 'package.json');
    if (!fs.existsSync(file)) continue;
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      name: string;
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
      exports?: Record<string, string | Record<string, string>>;
    };
    const entries = new Map<string, string>();
    for (const [sub, target] of Object.entries(json.exports ?? {})) {
      if (typeof target !== 'object') continue;
      const src = target[CONDITION] ?? target.source ?? target.default;
      if (src?.endsWith('.ts')) entries.set(sub, path.join(dir, src));
    }
    const scoped = (o: Record<string, string> | undefined) => Object.keys(o ?? {}).filter((d) => d.startsWith(SCOPE));
    pkgs.set(json.name, { name: json.name, dir, deps: scoped(json.dependencies), devDeps: scoped(json.devDependencies), entries });
  }
  return pkgs;
}

function resolve(spec: string, from: string, pkgs: Map<string, Pkg>): string | undefined {
  if (spec.startsWith('.')) {
    const p = path.resolve(path.dirname(from), spec);
    return fs.existsSync(p) ? p : undefined;
  }
  if (!spec.startsWith(SCOPE)) return undefined;
  const [scope, name, ...rest] = spec.split('/');
  const pkg = pkgs.get(`${scope}/${name}`);
  return pkg?.entries.get(rest.length ? `./${rest.join('/')}` : '.');
}

function parse(file: string, pkgs: Map<string, Pkg>): Mod {
  const text = fs.readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const mod: Mod = { file, edges: [], exports: new Map(), starFrom: [], text };
  const hasExport = (n: ts.Node) => ts.canHaveModifiers(n) && (ts.getModifiers(n) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  const addEdge = (spec: string, typeOnly: boolean, names: string[]) => {
    const to = resolve(spec, file, pkgs);
    if (to) mod.edges.push({ to, typeOnly, names });
    return to;
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const c = node.importClause;
      const names: string[] = [];
      let typeOnly = c?.isTypeOnly ?? false;
      if (c?.name) names.push('default');
      const b = c?.namedBindings;
      if (b && ts.isNamespaceImport(b)) names.push('*');
      if (b && ts.isNamedImports(b)) {
        for (const el of b.elements) names.push((el.propertyName ?? el.name).text);
        if (b.elements.length > 0 && b.elements.every((el) => el.isTypeOnly)) typeOnly = true;
      }
      addEdge(node.moduleSpecifier.text, typeOnly, names);
    } else if (ts.isExportDeclaration(node)) {
      const spec = node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier) ? node.moduleSpecifier.text : undefined;
      const clause = node.exportClause;
      if (!clause) {
        const to = spec ? addEdge(spec, node.isTypeOnly, ['*']) : undefined;
        if (to) mod.starFrom.push(to);
      } else if (ts.isNamedExports(clause)) {
        const names: string[] = [];
        for (const el of clause.elements) {
          names.push((el.propertyName ?? el.name).text);
          mod.exports.set(el.name.text, { local: spec === undefined, typeOnly: node.isTypeOnly || el.isTypeOnly });
        }
        if (spec) addEdge(spec, node.isTypeOnly, names);
      } else if (spec) {
        addEdge(spec, node.isTypeOnly, ['*']);
        mod.exports.set(clause.name.text, { local: false, typeOnly: node.isTypeOnly });
      }
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteralLike(arg)) addEdge(arg.text, false, ['*']);
    } else if (hasExport(node)) {
      const isType = ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node);
      if (ts.isVariableStatement(node)) {
        for (const d of node.declarationList.declarations) if (ts.isIdentifier(d.name)) mod.exports.set(d.name.text, { local: true, typeOnly: false });
      } else if ((node as ts.DeclarationStatement).name && ts.isIdentifier((node as ts.DeclarationStatement).name!)) {
        const isDefault = (ts.getModifiers(node as ts.HasModifiers) ?? []).some((m) => m.kind === ts.SyntaxKind.DefaultKeyword);
        mod.exports.set(isDefault ? 'default' : (node as ts.DeclarationStatement).name!.getText(sf), { local: true, typeOnly: isType });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return mod;
}

/** Strongly connected components with more than one module (or a module importing itself): the cycles. */
function cycles(mods: Map<string, Mod>, runtimeOnly: boolean): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const e of mods.get(v)!.edges) {
      if ((runtimeOnly && e.typeOnly) || !mods.has(e.to)) continue;
      if (!idx.has(e.to)) {
        strong(e.to);
        low.set(v, Math.min(low.get(v)!, low.get(e.to)!));
      } else if (on.has(e.to)) low.set(v, Math.min(low.get(v)!, idx.get(e.to)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      const self = mods.get(v)!.edges.some((e) => e.to === v);
      if (scc.length > 1 || self) out.push(scc.map(rel).sort());
    }
  };
  for (const v of mods.keys()) if (!idx.has(v)) strong(v);
  return out;
}

function packageOf(file: string, pkgs: Map<string, Pkg>): Pkg | undefined {
  for (const p of pkgs.values()) if (file.startsWith(p.dir + path.sep)) return p;
  return undefined;
}

function load() {
  const pkgs = readPackages();
  const srcFiles = [...pkgs.values()].flatMap((p) => walk(path.join(p.dir, 'src')));
  // Everything that may use a source module's exports: other sources, tests, examples, bench, scripts.
  const userFiles = [
    ...[...pkgs.values()].flatMap((p) => [...walk(path.join(p.dir, 'test')), ...walk(path.join(p.dir, 'bench'))]),
    ...walk(path.join(ROOT, 'examples')),
    ...walk(path.join(ROOT, 'test')),
    ...walk(path.join(ROOT, 'bench')),
    ...walk(path.join(ROOT, 'scripts')),
  ];
  const src = new Map(srcFiles.map((f) => [f, parse(f, pkgs)]));
  const users = new Map(userFiles.map((f) => [f, parse(f, pkgs)]));
  return { pkgs, src, users };
}

function check(): number {
  const { pkgs, src, users } = load();
  const problems: string[] = [];

  for (const scc of cycles(src, false)) problems.push(`import cycle: ${scc.join(' -> ')}`);

  // Workspace imports in src must be declared dependencies, and every declared one must be imported.
  for (const p of pkgs.values()) {
    const used = new Set<string>();
    for (const m of src.values()) {
      if (packageOf(m.file, pkgs) !== p) continue;
      for (const e of m.edges) {
        const q = packageOf(e.to, pkgs);
        if (q && q !== p) {
          used.add(q.name);
          if (!p.deps.includes(q.name)) problems.push(`${rel(m.file)} imports ${q.name}, which is not in ${p.name}'s dependencies`);
        }
      }
    }
    for (const d of p.deps) if (!used.has(d)) problems.push(`${p.name} depends on ${d} but no file of its src imports it`);
  }

  // Exports: public when an entry point exports them; otherwise some other file must import them.
  const wanted = new Map<string, Set<string>>();
  const want = (file: string, name: string) => {
    if (!wanted.has(file)) wanted.set(file, new Set());
    wanted.get(file)!.add(name);
  };
  const all = [...src.values(), ...users.values()];
  for (const m of all) for (const e of m.edges) for (const n of e.names) want(e.to, n);
  for (const p of pkgs.values()) for (const entry of p.entries.values()) want(entry, '*');
  // A star (import * or export *) wants everything; a re-export wanted by a user wants its source's name too.
  let changed = true;
  while (changed) {
    changed = false;
    for (const m of src.values()) {
      const w = wanted.get(m.file);
      if (!w) continue;
      for (const e of m.edges) {
        for (const n of e.names) {
          const before = wanted.get(e.to)?.size ?? 0;
          if (m.starFrom.includes(e.to) && w.size > 0) for (const x of w) want(e.to, x);
          if (w.has('*') && n !== '*') want(e.to, n);
          if ((wanted.get(e.to)?.size ?? 0) !== before) changed = true;
        }
      }
    }
  }
  for (const m of src.values()) {
    const w = wanted.get(m.file) ?? new Set<string>();
    if (w.has('*')) continue;
    for (const [name, info] of m.exports) {
      if (!info.local || w.has(name)) continue;
      problems.push(`${rel(m.file)}: export ${name} is imported by no other file (drop the export, or the code)`);
    }
  }

  const known = KNOWN.filter((k) => problems.includes(k.problem));
  for (const k of KNOWN) if (!known.includes(k)) problems.push(`stale known problem (fixed: remove it from KNOWN in scripts/modules.ts): ${k.problem}`);
  const open = problems.filter((p) => !KNOWN.some((k) => k.problem === p));
  for (const k of known) process.stdout.write(`modules check: known, ${k.why}: ${k.problem}\n`);
  if (open.length) {
    process.stderr.write(`modules check: ${open.length} problem(s)\n${open.map((p) => `  - ${p}`).join('\n')}\n`);
    return 1;
  }
  const cyclesLeft = cycles(src, false).length;
  process.stdout.write(
    `modules check: ${src.size} source modules in ${pkgs.size} packages; ${cyclesLeft} import cycle(s) (${cycles(src, true).length} at runtime)` +
      `${known.length ? `, all known` : ''}; every export used; dependencies match imports\n`,
  );
  return 0;
}

function graph(): void {
  const { pkgs, src } = load();
  const lines: string[] = [];
  for (const p of [...pkgs.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const imported = new Set<string>();
    for (const m of src.values()) {
      if (packageOf(m.file, pkgs) !== p) continue;
      for (const e of m.edges) {
        const q = packageOf(e.to, pkgs);
        if (q && q !== p) imported.add(q.name);
      }
    }
    const short = (n: string) => n.slice(SCOPE.length);
    const declared = p.deps.map(short).sort();
    const extra = [...imported].filter((n) => !p.deps.includes(n)).map(short);
    lines.push(`${short(p.name).padEnd(9)} -> ${declared.join(', ') || '(none)'}${extra.length ? `   [src also imports: ${extra.join(', ')}]` : ''}`);
  }
  const runtime = cycles(src, true);
  const any = cycles(src, false);
  lines.push(`import cycles in packages/*/src: ${any.length} (${runtime.length} at runtime)`);
  for (const c of any) lines.push(`  ${c.join(' -> ')}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

function files(): void {
  const { pkgs } = load();
  const lines: string[] = [];
  for (const p of [...pkgs.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const list = walk(path.join(p.dir, 'src')).sort();
    const total = list.reduce((n, f) => n + fs.readFileSync(f, 'utf8').split('\n').length - 1, 0);
    lines.push(`${p.name} (${list.length} files, ${total} lines)`);
    for (const f of list) {
      const text = fs.readFileSync(f, 'utf8');
      const n = text.split('\n').length - 1;
      lines.push(`  ${path.relative(path.join(p.dir, 'src'), f).padEnd(24)} ${String(n).padStart(4)}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

const command = process.argv[2];
if (command === 'check') process.exitCode = check();
else if (command === 'graph') graph();
else if (command === 'files') files();
else {
  process.stderr.write('usage: node scripts/modules.ts check|graph|files\n');
  process.exitCode = 2;
}
