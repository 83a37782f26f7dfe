/**
 * `external-secrets-agent inject -f <file> [-f <file>...]`: prints manifests with the agent
 * injected, the way the webhook would inject the pods they create, so a user can review the
 * result and a GitOps repository can hold it.
 *
 * Every Pod and every pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
 * CronJob or ReplicationController (also inside a `v1` `List`) goes through the same pure
 * `mutate` as the webhook; everything else is printed unchanged, in document order. Pods and
 * templates without the opt-in label are left as they are. A template is mutated as it stands:
 * it is not given the workload's name or a pod name, so the output holds nothing that differs
 * from one pod of the workload to the next.
 *
 * A document that cannot be injected stops the command: exit code 1, each refusal on stderr
 * naming the file, the document, the object and the annotation at fault, and nothing on stdout
 * (a half-injected set must not reach `kubectl apply`). The webhook's warnings go to stderr.
 *
 * NOTE: YAML comments, key quoting and flow style are not kept; the output is re-serialised.
 * Input is read as kubectl reads it (YAML 1.1: `0644` is octal, `yes` is true), see
 * KUBECTL_YAML below.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError } from '../agent/errors.ts';
import { dumpManifests, loadManifests, YAMLException } from '../agent/kube-yaml.ts';
import { INJECT_LABEL } from './annotations.ts';
import { parseInjectorConfig, SETTINGS } from './config.ts';
import type { JsonPatchOp } from './json-patch.ts';
import { type InjectorSettings, mutate } from './mutate.ts';
import type { Pod } from './pod.ts';
import {
  describeObject,
  describePath,
  findPodTemplates,
  getPath,
  isObject,
  type PodTemplateRef,
} from './pod-templates.ts';

/**
 * The agent image when `--agent-image` is not given: the chart's default image
 * (charts/external-secrets-agent/values.yaml `image`, tag = appVersion). test/chart checks
 * that the two agree.
 */
export const DEFAULT_AGENT_IMAGE = 'ghcr.io/external-secrets-agent/external-secrets-agent:0.1.0';

/** Injector settings that only concern its HTTPS server, not the pods it mutates. */
const SERVER_ONLY_FLAGS = new Set(['port', 'host', 'tls-cert-file', 'tls-key-file', 'log-level']);

/**
 * Settings `inject` accepts besides its own flags: every injector setting that shapes the
 * mutated pod, with the same flag name, so the output matches a webhook configured alike.
 */
const podSettings = Object.values(SETTINGS as Record<string, { flag: string; help: string }>)
  .filter((s) => !SERVER_ONLY_FLAGS.has(s.flag));

/** One input: its name for messages (`-` is shown as `<stdin>`) and its text. */
export interface ManifestInput {
  file: string;
  text: string;
}

export interface InjectOutcome {
  /** Every non-empty document of every input, in order, injected where opted in. */
  documents: unknown[];
  /** The webhook's warnings, each prefixed with the file, document and object. */
  warnings: string[];
  /** Refused pods and unreadable documents; when there are any, print no documents. */
  problems: string[];
  /** Count of Pods and pod templates injected. */
  injected: number;
}

/**
 * Injects every opted-in Pod and pod template in `inputs`. Pure: it reads no file, clock or
 * environment, and does not change `inputs`.
 */
export function injectManifests(
  inputs: ManifestInput[],
  settings: InjectorSettings,
): InjectOutcome {
  const outcome: InjectOutcome = { documents: [], warnings: [], problems: [], injected: 0 };
  for (const input of inputs) {
    let docs: unknown[];
    try {
      docs = loadManifests(input.text, input.file);
    } catch (err) {
      outcome.problems.push(`${input.file}: ${describeYamlError(err)}`);
      continue;
    }
    docs.forEach((doc, i) => {
      // An empty document (only comments, or `---` twice) is dropped, as kubectl drops it.
      if (doc === null || doc === undefined) return;
      const where = `${input.file} (document ${i + 1})`;
      outcome.documents.push(injectDocument(doc, where, settings, outcome));
    });
  }
  return outcome;
}

/** Returns `doc`, or a copy with each opted-in pod or template injected. */
function injectDocument(
  doc: unknown,
  where: string,
  settings: InjectorSettings,
  outcome: InjectOutcome,
): unknown {
  const refs = findPodTemplates(doc);
  if (refs.length === 0) return doc;
  const copy = structuredClone(doc);

  for (const ref of refs) {
    const target = getPath(copy, ref.path) as Pod;
    const subject = `${where}: ${describeObject(ref.owner)}`;
    const what = ref.isPod ? 'the pod' : `the pod template at ${describePath(ref.path)}`;

    if (target.metadata?.labels?.[INJECT_LABEL] !== 'true') {
      warnIfLabelMisplaced(ref, subject, outcome);
      continue;
    }

    // NOTE: the template goes to mutate as it is, with no name or namespace added: nothing in
    // the patch may depend on which pod of the workload it lands in.
    const result = mutate(target, settings);
    if (!result.ok) {
      const reasons = result.error.problems.map((p) => `${p.field}: ${p.message}`).join('; ');
      outcome.problems.push(`${subject}: cannot inject ${what}: ${reasons}`);
      continue;
    }
    for (const warning of result.warnings) outcome.warnings.push(`${subject}: ${warning}`);
    if (result.patch.length > 0) {
      applyAdds(target, result.patch);
      outcome.injected++;
    }
  }
  return copy;
}

/** The opt-in label on a workload instead of its pod template is a likely mistake: say so. */
function warnIfLabelMisplaced(ref: PodTemplateRef, subject: string, outcome: InjectOutcome) {
  if (ref.isPod || ref.owner.labels[INJECT_LABEL] !== 'true') return;
  outcome.warnings.push(
    `${subject}: is labelled ${INJECT_LABEL}=true but its pod template at ` +
      `${describePath(ref.path)} is not; the label opts pods in only on the template, ` +
      `not injected`,
  );
}

/**
 * Applies the `add` operations `mutate` emits to `target`, in place. Another operation, or a
 * path whose parent does not exist, means `mutate` and this function disagree: a bug, thrown.
 */
function applyAdds(target: unknown, patch: readonly JsonPatchOp[]): void {
  for (const op of patch) {
    if (op.op !== 'add') throw new Error(`inject: unexpected JSON Patch op ${op.op} at ${op.path}`);
    const segments = op.path
      .split('/')
      .slice(1)
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = segments.pop();
    const parent = getPath(target, segments);
    const value = structuredClone(op.value);
    if (Array.isArray(parent) && last === '-') parent.push(value);
    else if (Array.isArray(parent) && /^\d+$/.test(last ?? '') && Number(last) <= parent.length) {
      parent.splice(Number(last), 0, value);
    } else if (isObject(parent) && last !== undefined) parent[last] = value;
    else throw new Error(`inject: JSON Patch path ${op.path} has no parent in the pod`);
  }
}

/**
 * The parser's reason and position, without the source snippet js-yaml adds to its message:
 * the snippet quotes the file, which may hold a Secret's data.
 */
function describeYamlError(err: unknown): string {
  if (err instanceof YAMLException) {
    const at = err.mark ? ` at line ${err.mark.line + 1}, column ${err.mark.column + 1}` : '';
    return `not valid YAML${at}: ${err.reason}`;
  }
  return `not valid YAML: ${(err as Error).message}`;
}

/** Where the command reads and writes; tests pass their own. */
export interface CommandIo {
  stdin: AsyncIterable<string | Buffer>;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

const processIo: CommandIo = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
};

/**
 * Runs the command. Exit codes: 0 printed; 1 a document was refused or an input could not be
 * read (stderr says which); 2 bad flags (stderr has the usage).
 */
export async function runInject(args: string[], io: CommandIo = processIo): Promise<number> {
  const parsed = parseFlags(args);
  if (parsed.kind === 'help') {
    io.stdout.write(usage());
    return 0;
  }
  if (parsed.kind === 'error') {
    io.stderr.write(`external-secrets-agent inject: ${parsed.message}\n\n${usage()}`);
    return 2;
  }

  const inputs: ManifestInput[] = [];
  for (const file of parsed.files) {
    try {
      const text = file === '-' ? await readAll(io.stdin) : await readFile(file, 'utf8');
      inputs.push({ file: file === '-' ? '<stdin>' : file, text });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      io.stderr.write(`external-secrets-agent inject: cannot read ${file} (${code})\n`);
      return 1;
    }
  }

  const outcome = injectManifests(inputs, parsed.settings);
  for (const warning of outcome.warnings) io.stderr.write(`Warning: ${warning}\n`);
  if (outcome.problems.length > 0) {
    for (const problem of outcome.problems) io.stderr.write(`Error: ${problem}\n`);
    return 1;
  }
  io.stdout.write(format(outcome.documents, parsed.output));
  return 0;
}

type ParsedFlags =
  | { kind: 'help' }
  | { kind: 'error'; message: string }
  | { kind: 'run'; files: string[]; output: 'yaml' | 'json'; settings: InjectorSettings };

function parseFlags(args: string[]): ParsedFlags {
  const settingOptions = Object.fromEntries(
    podSettings.map((s) => [s.flag, { type: 'string' as const }]),
  );
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        output: { type: 'string', short: 'o', default: 'yaml' },
        help: { type: 'boolean', short: 'h' },
        ...settingOptions,
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    return { kind: 'error', message: (err as Error).message };
  }
  if (values['help']) return { kind: 'help' };

  const files = (values['filename'] as string[] | undefined) ?? [];
  if (files.length === 0) return { kind: 'error', message: 'expected at least one -f <file>' };
  if (files.filter((f) => f === '-').length > 1) {
    return { kind: 'error', message: 'stdin (-f -) can be read only once' };
  }
  const output = values['output'];
  if (output !== 'yaml' && output !== 'json') {
    return { kind: 'error', message: `-o: expected yaml or json, got ${JSON.stringify(output)}` };
  }

  // The injector's own parser checks the pod settings, so both accept the same values.
  // NOTE: no environment is passed: the output depends on the flags and files only.
  const injectorArgs = podSettings.flatMap((s) =>
    typeof values[s.flag] === 'string' ? [`--${s.flag}=${values[s.flag] as string}`] : [],
  );
  if (values['agent-image'] === undefined) {
    injectorArgs.push(`--agent-image=${DEFAULT_AGENT_IMAGE}`);
  }
  try {
    const settings = parseInjectorConfig(injectorArgs, {}).settings;
    return { kind: 'run', files, output, settings };
  } catch (err) {
    if (err instanceof ConfigError) return { kind: 'error', message: err.message };
    throw err;
  }
}

/** YAML documents separated by `---`; JSON as the one object, or a `v1` `List` of several. */
function format(documents: unknown[], output: 'yaml' | 'json'): string {
  if (output === 'json') {
    const value =
      documents.length === 1 ? documents[0] : { apiVersion: 'v1', kind: 'List', items: documents };
    return JSON.stringify(value, null, 2) + '\n';
  }
  // noRefs: an anchor in the input is written out in full, as kubectl would send it.
  return dumpManifests(documents);
}

async function readAll(stream: AsyncIterable<string | Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

function usage(): string {
  const settings = podSettings
    .map((s) => `  --${s.flag.padEnd(26)} ${s.help}`)
    .join('\n');
  return `usage: external-secrets-agent inject -f <file|-> [-f <file>...] [flags]

Prints the manifests with the agent injected into every opted-in Pod and pod template
(Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, ReplicationController), as the
webhook would; other documents are printed unchanged. Exit code 1 when a pod is refused.

  -f, --filename <file>        manifest file, or - for stdin; repeat for several
  -o, --output yaml|json       output format (default yaml)
  --agent-image <image>        default ${DEFAULT_AGENT_IMAGE}

Injector settings, with the injector's defaults (environment variables are not read):
${settings}
`;
}
