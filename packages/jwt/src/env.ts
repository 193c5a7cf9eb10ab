import { JwtConfigError } from './errors.ts';
import type { KeyInput } from './keys.ts';
import { createKeyRing, type KeyRing } from './ring.ts';

/**
 * Builds a key ring from the environment:
 * - `JWT_SECRET`: one HMAC secret (>= 32 bytes), or a comma-separated list: the first signs, all verify.
 * - `JWT_KEYS`, one of three forms (the first key signs, all verify):
 *   - a JSON array of JWKs, each with `kid` (`alg` optional: inferred from kty/crv),
 *   - a JSON JWKS document `{"keys":[...]}`,
 *   - `kid:secret,kid:secret` (HMAC secrets by explicit kid).
 * Setting both is refused, as is setting neither. Messages never include a secret.
 */
export function keyRingFromEnv(env: NodeJS.ProcessEnv = process.env): KeyRing {
  const secret = env.JWT_SECRET?.trim();
  const keys = env.JWT_KEYS?.trim();
  if (secret && keys) throw new JwtConfigError('JWT_SECRET and JWT_KEYS are both set: set only one (JWT_KEYS for keys by kid, JWT_SECRET for HMAC secrets).');
  if (secret) return createKeyRing({ secret: secret.split(',').map((s) => s.trim()).filter(Boolean) }, 'JWT_SECRET');
  if (!keys)
    throw new JwtConfigError(
      'JWT mode needs keys: set JWT_SECRET to a random secret of at least 32 bytes (`openssl rand -base64 32`), ' +
        'or JWT_KEYS to a JSON JWKS / JSON array of JWKs / "kid:secret,..." list.',
    );
  return createKeyRing({ keys: parseKeys(keys) }, 'JWT_KEYS');
}

function parseKeys(text: string): KeyInput[] {
  if (text.startsWith('[') || text.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      // The JSON parser's message can quote the text, which holds secrets: say only where it broke.
      throw new JwtConfigError('JWT_KEYS: starts like JSON but does not parse; give a JSON array of JWKs or {"keys":[...]}.');
    }
    const list = Array.isArray(doc) ? doc : (doc as { keys?: unknown }).keys;
    if (!Array.isArray(list) || list.length === 0) throw new JwtConfigError('JWT_KEYS: the JSON holds no keys; expected [jwk, ...] or {"keys":[jwk, ...]}.');
    return list as KeyInput[];
  }
  return text.split(',').map((pair, i) => {
    const at = pair.indexOf(':');
    if (at <= 0) throw new JwtConfigError(`JWT_KEYS: entry #${i + 1} is not "kid:secret"; use kid:secret pairs separated by commas, or JSON.`);
    return { kid: pair.slice(0, at).trim(), alg: 'HS256' as const, secret: pair.slice(at + 1).trim() };
  });
}
