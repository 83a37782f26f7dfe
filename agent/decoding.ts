/**
 * `remoteRef.decodingStrategy`: None (default) keeps the bytes; Base64 and Base64URL decode
 * padded base64 strictly and fail on anything else; Auto tries Base64, then Base64URL, and keeps
 * the bytes when neither applies (so a plain value that happens to be valid base64, such as
 * "abcd", is decoded: ESO does the same and users depend on it).
 */
import { InvalidDataError } from './errors.ts';
import type { DecodingStrategy } from './types.ts';

const std = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const url = /^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$/;

function tryDecode(text: string, encoding: 'base64' | 'base64url'): Buffer | undefined {
  return (encoding === 'base64' ? std : url).test(text) ? Buffer.from(text, encoding) : undefined;
}

/**
 * Applies `strategy` to `value`. `what` names the value in the error (for example
 * "spec.data[0] (key app/keys)"); the value itself is never part of a message.
 */
export function applyDecoding(
  value: Buffer,
  strategy: DecodingStrategy | undefined,
  what: string,
): Buffer {
  if (strategy === undefined || strategy === 'None') return value;
  const text = value.toString('latin1');

  if (strategy === 'Auto') {
    return tryDecode(text, 'base64') ?? tryDecode(text, 'base64url') ?? value;
  }
  if (strategy === 'Base64' || strategy === 'Base64URL') {
    const decoded = tryDecode(text, strategy === 'Base64' ? 'base64' : 'base64url');
    if (decoded === undefined) {
      throw new InvalidDataError(
        `${what}: error applying decoding strategy ${strategy}: the value is not valid ${strategy}`,
      );
    }
    return decoded;
  }
  throw new InvalidDataError(
    `${what}: unknown decodingStrategy "${String(strategy)}" (expected None, Base64, Base64URL or Auto)`,
  );
}
