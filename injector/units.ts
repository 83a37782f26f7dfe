/**
 * Parsers for the two value syntaxes our annotations borrow from elsewhere: Kubernetes resource
 * quantities (`10m`, `48Mi`) and Go durations (`1h30m`, the syntax of ESO's `refreshInterval`).
 * Both return `undefined` for anything they do not accept, so the caller can name the annotation
 * in its message.
 */

import { parseDuration } from '../agent/duration.ts';

const quantityPattern =
  /^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const quantitySuffixes: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * Parses a non-negative Kubernetes quantity into base units (cores for CPU, bytes for memory).
 * The result is a float: exact enough to compare a request with a limit, not to re-serialise.
 * Signs are not accepted, since no resource value of ours may be negative.
 */
export function parseQuantity(text: string): number | undefined {
  const match = quantityPattern.exec(text);
  if (!match) return undefined;
  const [, digits = '', suffix = ''] = match;
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : quantitySuffixes[suffix];
  if (scale === undefined) return undefined;
  const value = Number(digits) * scale;
  return Number.isFinite(value) ? value : undefined;
}

/**
 * Parses a Go duration (`time.ParseDuration` syntax: `300ms`, `1.5h`, `2h45m`, a lone `0`) into
 * whole milliseconds, with the agent's parser (agent/duration.ts), so an annotation accepts
 * exactly what the agent will. Signs and surrounding blanks are not accepted. Returns
 * `undefined` for anything else, including a number without a unit such as `60`.
 */
export function parseGoDurationMs(text: string): number | undefined {
  if (/^[+-]/.test(text) || text !== text.trim()) return undefined;
  try {
    return parseDuration(text);
  } catch {
    return undefined;
  }
}
