/**
 * Offline helpers for the CRD tests: read the CRD files, turn client-node's schema models back into
 * the schema the API server sees, and check a manifest against a structural schema.
 *
 * The check covers what the API server decides before CEL: unknown fields, types, required fields,
 * enums, patterns, string lengths and list/map sizes. It does not evaluate x-kubernetes-validations
 * rules, apply defaults or check formats; test/crds/crds-live.test.ts covers those against a real
 * API server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAllYaml, type V1CustomResourceDefinition } from '@kubernetes/client-node';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const crdDir = path.join(repoRoot, 'charts/external-secrets-agent/crds');
export const GROUP = 'external-secrets.io';

/** One node of an OpenAPI v3 structural schema, with the key names of the YAML files. */
export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  minimum?: number;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
}

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: string;
}

/** A manifest object as read from YAML. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

export interface SchemaError {
  /** Field path in the API server's notation, for example spec.data[0].secretKey. */
  path: string;
  reason: string;
}

// client-node's generated models rename a few schema keys; nodes it types as `any` (items,
// additionalProperties) keep the YAML names. Map both back to the YAML names.
const modelKeyToYaml: Record<string, string> = { _default: 'default', _enum: 'enum', ref: '$ref' };

/** The schema as written in the YAML file, from client-node's model (or from raw YAML). */
export function rawSchema(node: unknown): Schema {
  if (node === null || typeof node !== 'object') return node as Schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (value === undefined) continue;
    const name =
      modelKeyToYaml[key] ??
      key.replace(
        /^x_kubernetes_(.*)$/,
        (_, rest: string) => `x-kubernetes-${rest.replaceAll('_', '-')}`,
      );
    if (name === 'properties') {
      out[name] = Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, rawSchema(v)]),
      );
    } else if (name === 'items' || (name === 'additionalProperties' && typeof value === 'object')) {
      out[name] = rawSchema(value);
    } else {
      out[name] = value;
    }
  }
  return out as Schema;
}

/** The CRD of one file under charts/external-secrets-agent/crds (each holds exactly one). */
export function loadCrd(file: string): V1CustomResourceDefinition {
  const docs = loadAllYaml(readFileSync(path.join(crdDir, file), 'utf8')).filter(Boolean);
  if (docs.length !== 1) throw new Error(`${file}: expected one document, found ${docs.length}`);
  return docs[0] as V1CustomResourceDefinition;
}

/** The openAPIV3Schema of one version of a CRD, with YAML key names. */
export function versionSchema(crd: V1CustomResourceDefinition, version: string): Schema {
  const v = crd.spec.versions.find((x) => x.name === version);
  if (!v?.schema?.openAPIV3Schema)
    throw new Error(`${crd.metadata?.name}: no schema for ${version}`);
  return rawSchema(v.schema.openAPIV3Schema);
}

/**
 * Every object of every YAML file under `dir` (recursively), in file-name order, as plain JSON
 * (client-node returns model class instances, which deepStrictEqual tells apart from literals).
 */
export function loadManifests(dir: string): { file: string; object: Manifest }[] {
  return yamlFiles(dir).flatMap((file) =>
    loadAllYaml(readFileSync(file, 'utf8'))
      .filter(Boolean)
      .map((object) => ({ file, object: JSON.parse(JSON.stringify(object)) as Manifest })),
  );
}

export function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

/**
 * Checks `value` against a structural schema and returns every violation found (empty when it
 * passes). Paths follow the API server's notation so tests can compare them with its messages.
 */
export function checkAgainstSchema(value: unknown, schema: Schema, at = ''): SchemaError[] {
  // The API server validates metadata itself; the CRD schema only says it is an object.
  if (at === 'metadata') return [];
  const typeError = checkType(value, schema, at);
  if (typeError) return [typeError];

  const errors: SchemaError[] = [];
  const fail = (reason: string) => errors.push({ path: at, reason });

  if (schema.enum && !schema.enum.includes(value))
    fail(`unsupported value ${JSON.stringify(value)}`);
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value))
      fail(`should match '${schema.pattern}'`);
    if (schema.minLength !== undefined && length < schema.minLength) fail('too short');
    if (schema.maxLength !== undefined && length > schema.maxLength) fail('too long');
  }
  if (typeof value === 'number' && schema.minimum !== undefined && value < schema.minimum) {
    fail(`should be at least ${schema.minimum}`);
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail('too many items');
    if (schema.minItems !== undefined && value.length < schema.minItems) fail('too few items');
    value.forEach((item, i) =>
      errors.push(...checkAgainstSchema(item, schema.items ?? {}, `${at}[${i}]`)),
    );
  }
  if (isObject(value) && schema.type === 'object') errors.push(...checkObject(value, schema, at));
  return errors;
}

function checkType(value: unknown, schema: Schema, at: string): SchemaError | undefined {
  const ok = schema['x-kubernetes-int-or-string']
    ? Number.isInteger(value) || typeof value === 'string'
    : schema.type === undefined ||
      (schema.type === 'object' && isObject(value)) ||
      (schema.type === 'array' && Array.isArray(value)) ||
      (schema.type === 'string' && typeof value === 'string') ||
      (schema.type === 'integer' && Number.isInteger(value)) ||
      (schema.type === 'number' && typeof value === 'number') ||
      (schema.type === 'boolean' && typeof value === 'boolean');
  return ok ? undefined : { path: at, reason: `should be ${schema.type ?? 'integer or string'}` };
}

function checkObject(value: Record<string, unknown>, schema: Schema, at: string): SchemaError[] {
  const errors: SchemaError[] = [];
  const child = (key: string) => (at ? `${at}.${key}` : key);
  const keys = Object.keys(value).filter((k) => value[k] !== undefined);

  for (const key of schema.required ?? []) {
    if (!keys.includes(key)) errors.push({ path: child(key), reason: 'required' });
  }
  if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) {
    errors.push({ path: at, reason: `must have at most ${schema.maxProperties} properties` });
  }
  if (schema.minProperties !== undefined && keys.length < schema.minProperties) {
    errors.push({ path: at, reason: `must have at least ${schema.minProperties} properties` });
  }

  for (const key of keys) {
    const declared = schema.properties?.[key];
    const extra =
      typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    if (declared) errors.push(...checkAgainstSchema(value[key], declared, child(key)));
    else if (extra) errors.push(...checkAgainstSchema(value[key], extra, child(key)));
    else if (!schema['x-kubernetes-preserve-unknown-fields']) {
      errors.push({ path: child(key), reason: 'unknown field' });
    }
  }
  return errors;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Calls `visit` for every node of a schema with its path (list items as `[]`). */
export function walkSchema(
  schema: Schema,
  visit: (node: Schema, at: string) => void,
  at = '',
): void {
  visit(schema, at);
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    walkSchema(child, visit, at ? `${at}.${key}` : key);
  }
  if (schema.items) walkSchema(schema.items, visit, `${at}[]`);
  if (typeof schema.additionalProperties === 'object')
    walkSchema(schema.additionalProperties, visit, `${at}{}`);
}
