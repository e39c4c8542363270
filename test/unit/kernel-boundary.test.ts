import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * One door into the kernel (src/net/index.ts): the packages that open kernel interfaces are
 * imported only in src/net, src/bpf and the IPVS generic-netlink transport. Every src/**\/*.ts is
 * parsed, and static imports, re-exports, `import x = require()`, `import()` types and calls,
 * require() and createRequire()'d functions are all checked.
 */
const KERNEL_PACKAGES = ['netlink', 'koffi', '@neuralegion/raw-socket', 'node:dgram', 'dgram'];
const ALLOWED = (file: string) => file.startsWith('src/net/') || file.startsWith('src/bpf/') || file === 'src/ipvs/netlink-transport.ts';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const isKernelPackage = (specifier: string) => KERNEL_PACKAGES.some((p) => specifier === p || specifier.startsWith(`${p}/`));

/** Module specifiers the file imports, each with its line. */
function importsOf(fileName: string, text: string): Array<{ specifier: string; line: number }> {
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Array<{ specifier: string; line: number }> = [];
  const requireFns = new Set(['require']);
  const add = (node: ts.Node | undefined) => {
    if (node && ts.isStringLiteralLike(node)) out.push({ specifier: node.text, line: file.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
  };
  const isCreateRequire = (n: ts.Expression) => ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'createRequire';
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    else if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer && isCreateRequire(node.initializer)) requireFns.add(node.name.text);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const loads = callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && requireFns.has(callee.text)) || isCreateRequire(callee);
      if (loads) add(node.arguments[0]);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return out;
}

test('only src/net, src/bpf and src/ipvs/netlink-transport.ts import netlink, koffi, raw-socket or dgram', () => {
  const offences: string[] = [];
  for (const path of sources(join(root, 'src'))) {
    const file = relative(root, path).split(sep).join('/');
    if (ALLOWED(file)) continue;
    for (const { specifier, line } of importsOf(file, readFileSync(path, 'utf8'))) {
      if (isKernelPackage(specifier)) offences.push(`${file}:${line} imports '${specifier}'`);
    }
  }
  assert.deepEqual(offences, [], `kernel interfaces are opened only in src/net (see src/net/index.ts):\n${offences.join('\n')}`);
});

test('the import scan sees every form of import', () => {
  const text = [
    "import koffi from 'koffi';",
    "import type { RtNetlinkSocket } from 'netlink';",
    "export { createSocket } from 'node:dgram';",
    "import 'dgram';",
    "import raw = require('@neuralegion/raw-socket');",
    "type T = typeof import('koffi');",
    "const m = await import('netlink');",
    "const r = require('koffi');",
    "const x = createRequire(import.meta.url)('@neuralegion/raw-socket');",
    "const req = createRequire(import.meta.url);",
    "req('node:dgram');",
    "const s = createSocket('udp4'); failure('netlink', 1);",
  ].join('\n');
  assert.deepEqual(importsOf('x.ts', text).filter((i) => isKernelPackage(i.specifier)), [
    { specifier: 'koffi', line: 1 },
    { specifier: 'netlink', line: 2 },
    { specifier: 'node:dgram', line: 3 },
    { specifier: 'dgram', line: 4 },
    { specifier: '@neuralegion/raw-socket', line: 5 },
    { specifier: 'koffi', line: 6 },
    { specifier: 'netlink', line: 7 },
    { specifier: 'koffi', line: 8 },
    { specifier: '@neuralegion/raw-socket', line: 9 },
    { specifier: 'node:dgram', line: 11 },
  ]);
});
