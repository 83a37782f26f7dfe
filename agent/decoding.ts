/**
 * `decodingStrategy`, exactly as ESO applies it (Go's `encoding/base64` with padding, not strict):
 *
 * - None (default) keeps the bytes.
 * - Base64 and Base64URL decode padded base64 of their alphabet and fail on anything else.
 *   Like Go's decoder they skip `\r` and `\n` anywhere (so a line-wrapped PEM body decodes), and
 *   accept non-zero bits in the last character before the padding; the empty value decodes to
 *   empty.
 * - Auto tries Base64, then Base64URL, and keeps the bytes when neither applies. So a plain value
 *   that happens to be valid base64, such as "abcd" or "password1234", is decoded: ESO does the
 *   same and users depend on it byte for byte.
 */
import { InvalidDataError } from './errors.ts';
import type { DecodingStrategy } from './types.ts';

const std = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const url = /^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$/;

/** Go's StdEncoding/URLEncoding.DecodeString: undefined where Go returns an error. */
export function decodeBase64Go(text: string, encoding: 'base64' | 'base64url'): Buffer | undefined {
  const compact = text.replace(/[\r\n]/g, '');
  return (encoding === 'base64' ? std : url).test(compact)
    ? Buffer.from(compact, encoding)
    : undefined;
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
  // latin1 maps every byte to one char, so bytes outside base64's alphabet stay invalid
  const text = value.toString('latin1');

  if (strategy === 'Auto') {
    return decodeBase64Go(text, 'base64') ?? decodeBase64Go(text, 'base64url') ?? value;
  }
  if (strategy === 'Base64' || strategy === 'Base64URL') {
    const decoded = decodeBase64Go(text, strategy === 'Base64' ? 'base64' : 'base64url');
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
