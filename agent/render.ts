/**
 * `external-secrets-agent render -f <file> [-f <file> ...] [-o yaml|json]`: shows the Secret(s)
 * ExternalSecrets would produce, without a cluster.
 *
 * Reads SecretStores, ClusterSecretStores, ExternalSecrets, Secrets (credentials a store refers
 * to, existing targets for Merge/Orphan/adoption), ConfigMaps (templateFrom) and Namespaces
 * (labels for ClusterSecretStore selectors) from YAML or JSON files (`-` is stdin; several
 * documents per file, and `kind: List`); other kinds are skipped with a note. It then runs the
 * agent's own pass (sync.ts) for each ExternalSecret against an in-memory API server
 * (memory-kube.ts) that holds those objects, fetching through the stores as the agent does:
 * the `fake` provider needs nothing, the others use their real endpoints and the credentials
 * of this environment (AWS_*, VAULT_*, ...).
 *
 * stdout gets each resulting Secret as the API server would store it (data base64); stderr
 * gets notes, Warning Events and errors, the agent's own messages. Exit 0 when every
 * ExternalSecret rendered, 1 when one failed, 2 for bad arguments or unreadable input.
 *
 * NOTE: printing Secret data is the point of this command, and the only place the agent prints
 * values: to stdout only. Errors and notes never contain values.
 *
 * An ExternalSecret's `status` in the input is ignored, so a pass always reads the provider
 * (a status copied from a cluster would otherwise make refreshInterval 0 skip the read).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from './config.ts';
import { AgentError } from './errors.ts';
import { dumpManifests, loadManifests } from './kube-yaml.ts';
import { createLogger } from './log.ts';
import { MemoryKube } from './memory-kube.ts';
import type { Provider, ProviderContext } from './providers/provider.ts';
import { syncExternalSecret, type SyncDeps, type TargetFiles } from './sync.ts';
import type { ExternalSecret, ObjectMeta, Secret } from './types.ts';

const GROUP = 'external-secrets.io';
const USAGE = `usage: external-secrets-agent render -f <file> [-f <file> ...] [-o yaml|json]

Runs the agent's sync for every ExternalSecret in the files against the stores, Secrets,
ConfigMaps and Namespaces in the same files, and prints the resulting Secret(s).
  -f, --filename  a YAML or JSON file of manifests; "-" reads stdin (repeatable)
  -o, --output    yaml (default) or json
Stores other than "fake" are read for real, with this environment's credentials.
`;

/** One ExternalSecret's outcome. */
export interface RenderedItem {
  /** "namespace/name" */
  externalSecret: string;
  ok: boolean;
  /** The target as the API server would store it; absent when none exists after the pass. */
  secret?: Secret;
  /** The agent's error (never a value) when !ok. */
  message?: string;
  /** What else happened: Warning Events, deletion, no Secret (creationPolicy None). */
  notes: string[];
}

export interface RenderOptions {
  /** Environment for providers; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Replaces the provider lookup (tests). */
  loadProvider?: (ctx: ProviderContext) => Promise<Provider>;
}

/** Files that are never kept: render writes no files. */
const noFiles: TargetFiles = {
  writtenAt: async () => undefined,
  write: async () => ({ changed: false }),
};

type Manifest = { apiVersion?: string; kind?: string; metadata?: ObjectMeta } & Record<
  string,
  unknown
>;

/**
 * Puts the manifests the agent reads into `kube` under their API paths. Returns the
 * ExternalSecrets in input order and notes about skipped objects.
 */
export function loadObjects(
  kube: MemoryKube,
  manifests: unknown[],
): { externalSecrets: ExternalSecret[]; notes: string[] } {
  const externalSecrets: ExternalSecret[] = [];
  const notes: string[] = [];
  const namespaces = new Set<string>();
  const flat = manifests.flatMap((m) =>
    (m as Manifest)?.kind === 'List' ? (((m as Manifest).items as unknown[]) ?? []) : [m],
  );
  for (const raw of flat) {
    if (raw === null || raw === undefined) continue;
    const m = raw as Manifest;
    const name = m.metadata?.name;
    const group = (m.apiVersion ?? '').split('/')[0];
    if (!m.kind || !name) {
      notes.push(`skipped a document without kind or metadata.name`);
      continue;
    }
    const ns = m.metadata?.namespace || 'default';
    const meta = { ...m.metadata, name };
    if (group === GROUP && m.kind === 'ExternalSecret') {
      const { status: _, ...rest } = m;
      const es = {
        ...rest,
        apiVersion: `${GROUP}/v1`,
        metadata: { ...meta, namespace: ns },
      } as unknown as ExternalSecret;
      const path = `/apis/${GROUP}/v1/namespaces/${ns}/externalsecrets/${name}`;
      externalSecrets.push(kube.put(path, es));
      namespaces.add(ns);
    } else if (group === GROUP && m.kind === 'SecretStore') {
      kube.put(`/apis/${GROUP}/v1/namespaces/${ns}/secretstores/${name}`, {
        ...m,
        metadata: { ...meta, namespace: ns },
      });
      namespaces.add(ns);
    } else if (group === GROUP && m.kind === 'ClusterSecretStore') {
      kube.put(`/apis/${GROUP}/v1/clustersecretstores/${name}`, m);
    } else if (m.apiVersion === 'v1' && m.kind === 'Secret') {
      kube.put(`/api/v1/namespaces/${ns}/secrets/${name}`, asStoredSecret(m, ns));
      namespaces.add(ns);
    } else if (m.apiVersion === 'v1' && m.kind === 'ConfigMap') {
      kube.put(`/api/v1/namespaces/${ns}/configmaps/${name}`, {
        ...m,
        metadata: { ...meta, namespace: ns },
      });
      namespaces.add(ns);
    } else if (m.apiVersion === 'v1' && m.kind === 'Namespace') {
      kube.put(`/api/v1/namespaces/${name}`, withNamespaceLabel(m, name));
    } else {
      notes.push(
        `skipped ${m.kind} ${m.metadata?.namespace ? `${ns}/` : ''}${name}: render does not use it`,
      );
    }
  }
  // The API server labels every namespace with its name; selectors may use that label.
  for (const ns of namespaces) {
    const path = `/api/v1/namespaces/${ns}`;
    if (!kube.objects.has(path))
      kube.put(
        path,
        withNamespaceLabel({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, ns),
      );
  }
  return { externalSecrets, notes };
}

function withNamespaceLabel(m: Manifest, name: string): Manifest {
  return {
    ...m,
    metadata: {
      ...m.metadata,
      name,
      labels: { 'kubernetes.io/metadata.name': name, ...m.metadata?.labels },
    },
  };
}

/** A Secret from a manifest as the API server stores it: stringData folded into data. */
function asStoredSecret(m: Manifest, ns: string): Secret {
  const { stringData, ...rest } = m as unknown as Secret;
  const data = { ...rest.data };
  for (const [k, v] of Object.entries(stringData ?? {}))
    data[k] = Buffer.from(String(v), 'utf8').toString('base64');
  return {
    ...rest,
    metadata: { ...rest.metadata, namespace: ns },
    type: rest.type ?? 'Opaque',
    data,
  };
}

/**
 * Runs the agent's pass for every ExternalSecret in `manifests` and returns what each produced,
 * in input order.
 */
export async function renderManifests(
  manifests: unknown[],
  options: RenderOptions = {},
): Promise<{ items: RenderedItem[]; notes: string[] }> {
  const kube = new MemoryKube();
  // ExternalSecrets without a uid in the input get a made-up one from the in-memory server;
  // an owner reference to that uid would be wrong in the cluster, so it is not printed.
  const withUid = new Set(
    manifests
      .flatMap((m) => ((m as Manifest)?.kind === 'List' ? ((m as Manifest).items as unknown[]) : [m]))
      .filter((m) => (m as Manifest)?.kind === 'ExternalSecret' && (m as Manifest).metadata?.uid)
      .map((m) => `${(m as Manifest).metadata?.namespace || 'default'}/${(m as Manifest).metadata?.name}`),
  );
  const { externalSecrets, notes } = loadObjects(kube, manifests);
  const hasUid = new Set(
    externalSecrets.filter((es) => withUid.has(`${es.metadata.namespace}/${es.metadata.name}`)),
  );
  const env = options.env ?? process.env;
  const items: RenderedItem[] = [];
  // One at a time: the passes share the in-memory objects (two may write the same Secret).
  for (const es of externalSecrets) {
    const ns = es.metadata.namespace as string;
    const name = es.metadata.name;
    const config = loadConfig({
      ESA_POD_NAME: 'render',
      ESA_POD_NAMESPACE: ns,
      ESA_EXTERNAL_SECRETS: name,
      ESA_OUTPUT_DIR: '/nonexistent/render-writes-no-files',
      ESA_PROVIDER_TOKEN_FILE: env.ESA_PROVIDER_TOKEN_FILE ?? '',
    });
    const deps: SyncDeps = {
      kube,
      config,
      log: createLogger('error', { component: 'agent' }, () => {}),
      env,
      files: noFiles,
      ...(options.loadProvider ? { loadProvider: options.loadProvider } : {}),
    };
    const eventsBefore = new Set(kube.events());
    const outcome = await syncExternalSecret(deps, name);
    const target = es.spec.target?.name || name;
    const live = kube.object<Secret>(`/api/v1/namespaces/${ns}/secrets/${target}`);
    const item: RenderedItem = {
      externalSecret: `${ns}/${name}`,
      ok: outcome.ok,
      notes: [],
    };
    if (!outcome.ok) item.message = outcome.message ?? 'failed';
    else if (live) {
      item.secret = asPrinted(live, hasUid.has(es) ? undefined : es.metadata.uid);
      if (live.metadata.ownerReferences?.length !== item.secret.metadata.ownerReferences?.length)
        item.notes.push(
          `no ownerReferences printed: the agent sets the owner reference to ExternalSecret ${ns}/${name} once it exists in the cluster (the input has no metadata.uid)`,
        );
    }
    for (const e of kube.events().filter((e) => !eventsBefore.has(e))) {
      if (e.type === 'Warning' && outcome.ok) item.notes.push(String(e.message));
      if (e.reason === 'Deleted') item.notes.push(String(e.message));
      if (e.reason === 'MissingProviderSecret') item.notes.push(String(e.message));
    }
    if (outcome.ok && !live) {
      const policy = es.spec.target?.creationPolicy ?? 'Owner';
      if (policy === 'None') item.notes.push(`no Secret: creationPolicy is None (files only)`);
      else if (policy === 'Merge')
        item.notes.push(
          `no Secret: creationPolicy is Merge and Secret ${ns}/${target} is not in the input`,
        );
      else item.notes.push(`no Secret ${ns}/${target} after the pass`);
    }
    items.push(item);
  }
  return { items, notes };
}

/**
 * The Secret as `kubectl get -o yaml` would show it, minus server-set fields, and minus owner
 * references to `madeUpUid` (an ExternalSecret uid only the in-memory server knows).
 */
function asPrinted(secret: Secret, madeUpUid?: string): Secret {
  const {
    uid: _u,
    resourceVersion: _r,
    ...meta
  } = secret.metadata as ObjectMeta & {
    resourceVersion?: string;
  };
  const sorted = (m?: Record<string, string>) =>
    m && Object.keys(m).length
      ? Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : undefined;
  const metadata: ObjectMeta = { name: meta.name };
  if (meta.namespace) metadata.namespace = meta.namespace;
  const labels = sorted(meta.labels);
  const annotations = sorted(meta.annotations);
  if (labels) metadata.labels = labels;
  if (annotations) metadata.annotations = annotations;
  const owners = (meta.ownerReferences ?? []).filter((o) => !madeUpUid || o.uid !== madeUpUid);
  if (owners.length) metadata.ownerReferences = owners;
  if (meta.finalizers?.length) metadata.finalizers = meta.finalizers;
  const out: Secret = { apiVersion: 'v1', kind: 'Secret', metadata, type: secret.type ?? 'Opaque' };
  if (secret.immutable) out.immutable = true;
  const data = sorted(secret.data);
  if (data) out.data = data;
  return out;
}

/** The Secrets as YAML documents or JSON (one object, or a v1 List for several). */
export async function formatSecrets(secrets: Secret[], output: 'yaml' | 'json'): Promise<string> {
  if (output === 'json') {
    const doc =
      secrets.length === 1 ? secrets[0] : { apiVersion: 'v1', kind: 'List', items: secrets };
    return `${JSON.stringify(doc, null, 2)}\n`;
  }
  if (secrets.length === 0) return '';
  return dumpManifests(secrets);
}

/**
 * Parses every document of a YAML (or JSON) text as kubectl does (agent/kube-yaml.ts, shared
 * with `inject`). Errors give the file and position, not the text.
 */
export async function parseManifests(text: string, file: string): Promise<unknown[]> {
  try {
    return loadManifests(text);
  } catch (err) {
    const e = err as { reason?: string; mark?: { line?: number; column?: number } };
    const at = e.mark ? `:${(e.mark.line ?? 0) + 1}:${(e.mark.column ?? 0) + 1}` : '';
    throw new AgentError('ERR_INPUT', `${file}${at}: not valid YAML: ${e.reason ?? 'parse error'}`);
  }
}

export interface RenderIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
  env?: NodeJS.ProcessEnv;
  loadProvider?: (ctx: ProviderContext) => Promise<Provider>;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const defaultIo: RenderIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  readStdin: readAllStdin,
};

/** "no such file or directory" from "ENOENT: no such file or directory, open '/x'". */
function systemReason(e: NodeJS.ErrnoException): string {
  const m = /^[A-Z]+: (.*?)(?:, \w+(?: '.*')?)?$/.exec(e.message);
  return m?.[1] ?? e.code ?? e.message;
}

/** The CLI command. Returns the exit code. */
export async function runRender(args: string[], io: RenderIo = defaultIo): Promise<number> {
  let values: { filename?: string[]; output?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        filename: { type: 'string', short: 'f', multiple: true },
        output: { type: 'string', short: 'o', default: 'yaml' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.stderr(`render: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const output = values.output;
  if (output !== 'yaml' && output !== 'json') {
    io.stderr(`render: -o must be yaml or json, got "${output}"\n`);
    return 2;
  }
  const files = values.filename ?? [];
  if (files.length === 0) {
    io.stderr(`render: no input: give at least one -f <file>\n\n${USAGE}`);
    return 2;
  }

  const manifests: unknown[] = [];
  let reading = '';
  try {
    for (const file of files) {
      reading = file;
      const text = file === '-' ? await io.readStdin() : await readFile(file, 'utf8');
      manifests.push(...(await parseManifests(text, file === '-' ? '<stdin>' : file)));
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const message = e.syscall ? `cannot read ${e.path ?? reading}: ${systemReason(e)}` : e.message;
    io.stderr(`render: ${message}\n`);
    return 2;
  }

  const { items, notes } = await renderManifests(manifests, {
    ...(io.env ? { env: io.env } : {}),
    ...(io.loadProvider ? { loadProvider: io.loadProvider } : {}),
  });
  for (const note of notes) io.stderr(`note: ${note}\n`);
  if (items.length === 0) {
    io.stderr('render: the input holds no ExternalSecret\n');
    return 2;
  }
  for (const item of items) {
    for (const note of item.notes)
      io.stderr(`note: ExternalSecret ${item.externalSecret}: ${note}\n`);
    if (!item.ok) io.stderr(`error: ${item.message}\n`);
  }
  const secrets = items.flatMap((i) => (i.secret ? [i.secret] : []));
  io.stdout(await formatSecrets(secrets, output));
  return items.every((i) => i.ok) ? 0 : 1;
}
