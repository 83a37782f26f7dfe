/**
 * The Python-packaged test servers (moto, OpenBao), from the project's own virtualenv that
 * test/harness/python-tools.sh creates on first use (pinned versions, outside the checkout).
 * Nothing is taken from the machine's own Python packages, so a fresh machine and this one run
 * the same versions.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
let cached: string | undefined;

/** Thrown when the virtualenv cannot be made. Tests let it fail the run; they never skip. */
export class PythonToolsError extends Error {
  readonly code = 'ERR_PYTHON_TOOLS';
}

/** The virtualenv's bin folder (installing it first when needed; progress on stderr). */
export function pythonToolsBin(): string {
  if (cached) return cached;
  try {
    cached = execFileSync('bash', [path.join(here, 'python-tools.sh')], {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    }).trim();
    return cached;
  } catch (err) {
    throw new PythonToolsError(
      `could not install moto and OpenBao into the project's virtualenv (test/harness/python-tools.sh): ${(err as Error).message}`,
    );
  }
}
