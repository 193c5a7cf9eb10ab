/**
 * The JavaScript starter from the TypeScript example: types erased by TypeScript's own transpiler (one file at a
 * time, no type check; imports used only as types dropped), relative `.ts` imports rewritten to `.js`, and the blank lines kept (the emitter drops
 * them, and a starter is read and copied: its layout matters). Runs at pack time and in a checkout, never in an
 * installed create-cluster-session (the published template is already JavaScript).
 */
import type * as TS from 'typescript';

const BLANK = '//__cluster_session_blank__';

/** Offsets inside template literals, where a blank line is part of a string and must stay untouched. */
function templateRanges(ts: typeof TS, source: TS.SourceFile): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  const walk = (node: TS.Node): void => {
    if (ts.isTemplateExpression(node) || ts.isNoSubstitutionTemplateLiteral(node)) ranges.push([node.getStart(source), node.end]);
    node.forEachChild(walk);
  };
  walk(source);
  return ranges;
}

export function toJavaScript(ts: typeof TS, fileName: string, code: string): string {
  const source = ts.createSourceFile(fileName, code, ts.ScriptTarget.Latest, true);
  const ranges = templateRanges(ts, source);
  let marked = '';
  let offset = 0;
  for (const line of code.split('\n')) {
    const inString = ranges.some(([from, to]) => offset > from && offset < to);
    marked += `${line.trim() === '' && !inString ? BLANK : line}\n`;
    offset += line.length + 1;
  }
  const { outputText } = ts.transpileModule(marked, {
    fileName,
    reportDiagnostics: false,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2023,
      rewriteRelativeImportExtensions: true,
      // Not verbatimModuleSyntax: imports used only as types are dropped whole, not left as `import {} from`.
    },
  });
  return outputText
    .replaceAll(new RegExp(`^[ \\t]*${BLANK}$`, 'gm'), '')
    .replaceAll(BLANK, '')
    .replace(/^(import .* from |export .* from )"(\.{1,2}\/[^"]+)";$/gm, "$1'$2';")
    .replace(/\n{3,}/g, '\n\n')
    .replace(/^\n+/, '');
}
