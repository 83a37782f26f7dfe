/**
 * `npm run build`: bundles the CLI into dist/: the entry dist/external-secrets-agent.mjs, which
 * the image runs, and dist/chunks/ with one file per lazily imported part (each command, each
 * provider and its SDK). A sidecar then reads only the agent and the SDK of the provider its
 * store uses; the injector, the other providers and their SDKs stay on disk.
 *
 * NOTE: one single file would be simpler to ship, but V8 must parse and hold all of it in every
 * process even when most modules are never initialized: measured here, a 9 MiB single-file
 * bundle made the idle sidecar about 20 MiB heavier than the split one.
 *
 * NOTE: the createRequire banner is needed because some CommonJS dependencies call require()
 * on Node built-ins, which an ESM bundle does not have by itself.
 */
import { build } from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// ESA_BUNDLE_OUT writes elsewhere (the tests bundle into a temporary folder).
const outfile = process.env.ESA_BUNDLE_OUT || path.join(root, 'dist', 'external-secrets-agent.mjs');
// The interpreter line: the image has no /usr/bin/env, so its build sets ESA_BUNDLE_NODE.
const node = process.env.ESA_BUNDLE_NODE || '/usr/bin/env node';

const result = await build({
  entryPoints: { [path.basename(outfile, '.mjs')]: path.join(root, 'cli.ts') },
  outdir: path.dirname(outfile),
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  minify: false,
  sourcemap: false,
  legalComments: 'linked',
  metafile: true,
  banner: { js: `#!${node}\n` + "import { createRequire as __esaCreateRequire } from 'node:module'; const require = __esaCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
const entryBytes = result.metafile.outputs[path.relative(process.cwd(), outfile)]?.bytes ?? 0;
process.stderr.write(
  `[build] ${path.relative(root, outfile)} ${(entryBytes / 1024).toFixed(0)} KiB, with chunks ${(bytes / 1024 / 1024).toFixed(1)} MiB\n`,
);
