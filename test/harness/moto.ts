/**
 * moto (https://github.com/getmoto/moto) as a real AWS endpoint on 127.0.0.1: Secrets Manager,
 * SSM and STS in one process, from the project's virtualenv (test/harness/python-tools.sh
 * installs a pinned moto[server] there on first use).
 *
 * Point an SDK client at `endpoint` with region us-east-1 and any credentials (moto accepts
 * every signature; the account is always 123456789012). Keep AWS_EC2_METADATA_DISABLED=true in
 * every test, so a credential chain that runs out of options never reaches for the metadata
 * address.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, logRoot, startProcess, waitFor } from './processes.ts';
import { pythonToolsBin } from './python-tools.ts';

export interface Moto {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** Forgets every secret, parameter and role. Refused on a shared server (see useMoto). */
  reset(): Promise<void>;
  /** Stops the server this call started (by its PID); a no-op for a shared one. */
  stop(): Promise<void>;
}

/** The command that starts moto: moto_server from the project's virtualenv. */
function motoCommand(): [string, string[]] {
  return [path.join(pythonToolsBin(), 'moto_server'), []];
}

/**
 * Starts a private moto on a free loopback port and waits until GET /moto-api/ answers 200.
 * Its output goes to `<logDir>/moto-<port>.log`.
 */
export async function startMoto(
  options: { logDir?: string; timeoutMs?: number } = {},
): Promise<Moto> {
  const [command, prefix] = motoCommand();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc = startProcess(
    `moto-${port}`,
    command,
    [...prefix, '-H', '127.0.0.1', '-p', String(port)],
    {
      logDir: options.logDir ?? logRoot(),
    },
  );

  try {
    await waitFor(
      `moto at ${endpoint}`,
      async () => (await fetch(`${endpoint}/moto-api/`)).status === 200,
      {
        proc,
        timeoutMs: options.timeoutMs ?? 30_000,
        intervalMs: 100,
      },
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }

  return {
    endpoint,
    reset: () => resetMoto(endpoint),
    stop: () => proc.stop(),
  };
}

async function resetMoto(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (res.status !== 200) throw new Error(`moto reset at ${endpoint} answered ${res.status}`);
}

/**
 * The moto that `npm test` started for the whole run (its endpoint is in the $ESA_TEST_ENV
 * file), or a private one when a test file runs on its own. Test files run in parallel against
 * the shared server, so they use names unique to the test and never reset it.
 */
export async function useMoto(): Promise<Moto> {
  const envFile = process.env.ESA_TEST_ENV;
  if (envFile) {
    const shared = JSON.parse(readFileSync(envFile, 'utf8')) as { moto?: { endpoint?: string } };
    const endpoint = shared.moto?.endpoint;
    if (endpoint) {
      return {
        endpoint,
        reset: () => Promise.reject(new Error(`refusing to reset the shared moto at ${endpoint}`)),
        stop: async () => {},
      };
    }
  }
  return startMoto();
}
