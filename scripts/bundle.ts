/**
 * `npm run build`: bundles the CLI into dist/external-secrets-agent.mjs, the one file the image
 * runs. Provider SDKs stay behind dynamic import(): esbuild keeps each behind a lazy module
 * initializer, so an SDK's code is evaluated only when a store uses that provider.
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
  entryPoints: [path.join(root, 'cli.ts')],
  outfile,
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
process.stderr.write(`[build] ${path.relative(root, outfile)} ${(bytes / 1024 / 1024).toFixed(1)} MiB\n`);
