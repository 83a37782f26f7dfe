import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runRender } from '../../agent/render.ts';
import type { Secret } from '../../agent/types.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const store = `apiVersion: external-secrets.io/v1beta1
kind: SecretStore
metadata: {name: fake}
spec:
  provider:
    fake:
      data:
      - {key: db, value: '{"user":"app","password":"LEAK-pw-71c2"}'}
`;
const es = (name: string, extra = '') => `apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: ${name}}
spec:
  secretStoreRef: {name: fake}
  dataFrom:
  - extract: {key: db}
${extra}`;

async function render(args: string[], stdin = '') {
  let stdout = '';
  let stderr = '';
  const code = await runRender(args, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    readStdin: async () => stdin,
    env: {},
  });
  return { code, stdout, stderr };
}

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'esa-render-'));
  const path = join(dir, 'in.yaml');
  writeFileSync(path, text);
  return path;
}

describe('render', () => {
  it('prints the Secret as the API server stores it, defaulting namespace and accepting v1beta1', async () => {
    const out = await render(['-f', file(`${store}---\n${es('one')}`), '-o', 'json']);
    assert.equal(out.code, 0, out.stderr);
    const s = JSON.parse(out.stdout) as Secret;
    assert.equal(s.apiVersion, 'v1');
    assert.equal(s.kind, 'Secret');
    assert.deepEqual([s.metadata.name, s.metadata.namespace, s.type], ['one', 'default', 'Opaque']);
    assert.equal(Buffer.from(s.data?.password ?? '', 'base64').toString(), 'LEAK-pw-71c2');
    assert.equal((s.metadata as { uid?: string }).uid, undefined);
  });

  it('prints no owner reference when the ExternalSecret has no uid, and says the agent sets it', async () => {
    const out = await render(['-f', file(`${store}---\n${es('one')}`), '-o', 'json']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal((JSON.parse(out.stdout) as Secret).metadata.ownerReferences, undefined);
    assert.doesNotMatch(out.stdout, /uid-\d/);
    assert.match(
      out.stderr,
      /^note: ExternalSecret default\/one: no ownerReferences printed: the agent sets the owner reference to ExternalSecret default\/one once it exists in the cluster/m,
    );
  });

  it("keeps the owner reference to the ExternalSecret's own uid from the input", async () => {
    const withUid = es('one').replace('metadata: {name: one}', 'metadata: {name: one, uid: 0b7c-11}');
    const out = await render(['-f', file(`${store}---\n${withUid}`), '-o', 'json']);
    assert.equal(out.code, 0, out.stderr);
    const owner = (JSON.parse(out.stdout) as Secret).metadata.ownerReferences?.[0];
    assert.deepEqual(
      [owner?.apiVersion, owner?.kind, owner?.name, owner?.uid],
      ['external-secrets.io/v1', 'ExternalSecret', 'one', '0b7c-11'],
    );
    assert.doesNotMatch(out.stderr, /ownerReferences/);
  });

  const refusedMetadata = [
    {
      name: 'a target name the API server refuses',
      extra: '  target: {name: Bad_Name}\n',
      message: /Secret "Bad_Name" is invalid: metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
    },
    {
      name: 'template labels the API server refuses',
      extra: `  target:\n    template:\n      metadata:\n        labels: {"bad label": "x y"}\n`,
      message: /\[metadata\.labels: Invalid value: "bad label": name part must consist of .*, metadata\.labels: Invalid value: "x y": a valid label must be an empty string/,
    },
    {
      name: 'a template annotation key the API server refuses',
      extra: `  target:\n    template:\n      metadata:\n        annotations: {"-note": "x"}\n`,
      message: /metadata\.annotations: Invalid value: "-note": name part must consist of/,
    },
  ];
  for (const c of refusedMetadata) {
    it(`exits 1 on ${c.name}, with the API server's message, and prints no Secret`, async () => {
      const out = await render(['-f', file(`${store}---\n${es('meta', c.extra)}`)]);
      assert.equal(out.code, 1, out.stderr);
      assert.match(out.stderr, /^error: ExternalSecret default\/meta: /m);
      assert.match(out.stderr, c.message);
      assert.equal(out.stdout, '');
    });
  }

  it('reads several files and stdin, prints YAML documents, and a v1 List as JSON', async () => {
    const path = file(store);
    const yaml = await render(['-f', path, '-f', '-'], `${es('a')}---\n${es('b')}`);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.equal(yaml.stdout.split('---\n').length, 2);
    assert.match(yaml.stdout, /^apiVersion: v1\nkind: Secret\n/);
    const json = await render(['-f', path, '-f', '-', '-o', 'json'], `${es('a')}---\n${es('b')}`);
    const list = JSON.parse(json.stdout) as { kind: string; items: Secret[] };
    assert.equal(list.kind, 'List');
    assert.deepEqual(
      list.items.map((s) => s.metadata.name),
      ['a', 'b'],
    );
  });

  it('skips kinds it does not use, with a note', async () => {
    const out = await render([
      '-f',
      file(
        `${store}---\n${es('a')}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: x}\n`,
      ),
    ]);
    assert.equal(out.code, 0);
    assert.match(out.stderr, /note: skipped Deployment x\/web: render does not use it/);
  });

  it("exits 1 with the agent's message for a failing ExternalSecret, and never prints a value there", async () => {
    const out = await render([
      '-f',
      file(
        `${store}---\n${es('bad', '  target:\n    template:\n      data:\n        x: "{{ .password | b64dec }}"\n')}---\n${es('good')}`,
      ),
    ]);
    assert.equal(out.code, 1);
    assert.match(
      out.stderr,
      /^error: ExternalSecret default\/bad: could not update secret: template data key "x": b64dec: the input is not valid base64$/m,
    );
    assert.doesNotMatch(out.stderr, /LEAK-/);
    assert.match(out.stdout, /name: good/);
    assert.doesNotMatch(out.stdout, /name: bad/);
  });

  const unquoted = [
    { name: 'an unquoted octal number', yaml: 'value: 0777', field: 'value', type: 'a number' },
    { name: 'an unquoted yes (YAML 1.1, as kubectl reads it)', yaml: 'value: yes', field: 'value', type: 'a boolean' },
    { name: 'an unquoted on', yaml: 'value: on', field: 'value', type: 'a boolean' },
    { name: 'an unquoted version number', yaml: 'value: x, version: 1.0', field: 'version', type: 'a number' },
  ];
  for (const c of unquoted) {
    it(`refuses a fake store holding ${c.name}, naming the store, entry and key`, async () => {
      const bad = store.replace(
        "- {key: db, value: '{\"user\":\"app\",\"password\":\"LEAK-pw-71c2\"}'}",
        `- {key: db, value: '{}'}\n      - {key: odd, ${c.yaml}}`,
      );
      const out = await render(['-f', file(`${bad}---\n${es('one')}`)]);
      assert.equal(out.code, 1, out.stderr);
      assert.match(
        out.stderr,
        new RegExp(
          `SecretStore default/fake \\(fake\\): spec\\.provider\\.fake\\.data\\[1\\] \\(key odd\\)\\.${c.field}: must be a string, got ${c.type}`,
        ),
      );
      assert.doesNotMatch(out.stderr, /radix|0777|511/);
    });
  }

  it('reads a quoted "yes", a date and an octal-looking string as text, as kubectl does', async () => {
    const texts = store.replace(
      "- {key: db, value: '{\"user\":\"app\",\"password\":\"LEAK-pw-71c2\"}'}",
      `- {key: a, value: "yes"}\n      - {key: b, value: 2024-01-01}\n      - {key: c, value: '0777'}`,
    );
    const extra = '  data:\n  - {secretKey: a, remoteRef: {key: a}}\n  - {secretKey: b, remoteRef: {key: b}}\n  - {secretKey: c, remoteRef: {key: c}}\n';
    const manifest = `${texts}---\n${es('one').replace(/  dataFrom:\n  - extract: \{key: db\}\n/, extra)}`;
    const out = await render(['-f', file(manifest), '-o', 'json']);
    assert.equal(out.code, 0, out.stderr);
    const data = (JSON.parse(out.stdout) as Secret).data ?? {};
    const text = (k: string) => Buffer.from(data[k] ?? '', 'base64').toString();
    assert.deepEqual([text('a'), text('b'), text('c')], ['yes', '2024-01-01', '0777']);
  });

  const usage = [
    { name: 'no -f', args: [], message: /no input: give at least one -f/ },
    { name: 'an unknown flag', args: ['--nope'], message: /Unknown option '--nope'/ },
    {
      name: 'a bad -o',
      args: ['-f', 'x', '-o', 'xml'],
      message: /-o must be yaml or json, got "xml"/,
    },
    {
      name: 'a missing file',
      args: ['-f', '/nonexistent/in.yaml'],
      message: /^render: cannot read \/nonexistent\/in\.yaml: no such file or directory\n$/,
    },
    {
      name: 'a directory',
      args: ['-f', tmpdir()],
      message: new RegExp(`^render: cannot read ${tmpdir()}: illegal operation on a directory\n$`),
    },
    {
      name: 'input without ExternalSecrets',
      args: ['-f', '-'],
      stdin: store,
      message: /holds no ExternalSecret/,
    },
  ];
  for (const c of usage) {
    it(`exits 2 on ${c.name}`, async () => {
      const out = await render(c.args, c.stdin);
      assert.equal(out.code, 2);
      assert.match(out.stderr, c.message);
    });
  }

  it('reports bad YAML with file and position but not the text', async () => {
    const out = await render(['-f', file('a: "LEAK-yaml-1\nb: : c: [')]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /in\.yaml:\d+:\d+: not valid YAML: /);
    assert.doesNotMatch(out.stderr, /LEAK-/);
  });

  it('runs as "external-secrets-agent render" reading stdin', () => {
    const run = spawnSync(process.execPath, ['cli.ts', 'render', '-f', '-', '-o', 'json'], {
      cwd: root,
      input: `${store}---\n${es('piped')}`,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as Secret).metadata.name, 'piped');
  });
});
