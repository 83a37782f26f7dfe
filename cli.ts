/**
 * external-secrets-agent <command> [flags]
 *
 * One entry point for everything the image runs and for the offline helpers. Each command's
 * module is imported only when that command runs, so the sidecar never loads the injector's
 * dependencies and the reverse.
 */
import { createLogger } from './agent/log.ts';

interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

const commands: Record<string, Command> = {
  whoami: {
    summary: 'print the identity the API server sees for this pod (SelfSubjectReview)',
    run: async (args) => (await import('./agent/whoami.ts')).whoami(args),
  },
  injector: {
    summary: 'serve the mutating admission webhook that injects the agent into pods',
    run: async (args) => (await import('./injector/main.ts')).runInjector(args),
  },
  init: {
    summary: 'sync every ExternalSecret of the pod once, then exit (init container)',
    run: async (args) => (await import('./agent/init.ts')).runInit(args),
  },
  sidecar: {
    summary: 'keep every ExternalSecret of the pod in sync until SIGTERM',
    run: async (args) => (await import('./agent/sidecar.ts')).runSidecar(args),
  },
  inject: {
    summary: 'print manifests with the agent injected into opted-in pods and pod templates',
    run: async (args) => (await import('./injector/inject-command.ts')).runInject(args),
  },
  ready: {
    summary: "exit 0 once the sidecar has synced everything (for the sidecar's startupProbe)",
    run: async (args) => (await import('./agent/sidecar.ts')).runReadyProbe(args),
  },
  render: {
    summary: 'print the Secrets that the ExternalSecrets in files would produce (-f, -o)',
    run: async (args) => (await import('./agent/render.ts')).runRender(args),
  },
  version: {
    summary: 'print the version',
    run: async () => {
      process.stdout.write(`external-secrets-agent ${VERSION}\n`);
      return 0;
    },
  },
};

export const VERSION = '0.1.0';

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: external-secrets-agent <command> [flags]\n\ncommands:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`external-secrets-agent: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { code?: string; message?: string };
    createLogger().error('command failed', { errCode: e.code ?? 'ERR_UNEXPECTED', err: e.message ?? String(err) });
    process.exitCode = 1;
  },
);
