export { createKeyRing, type KeyRing, type SignOptions, type VerifyOptions, type VerifiedToken } from './ring.ts';
export type { JwtAlgorithm, KeyInput, KeyMaterial, KeyRingOptions } from './keys.ts';
export { keyRingFromEnv } from './env.ts';
export { jwtSession, type JwtSessionMiddleware } from './middleware.ts';
export type { CookieOptions, JwtSessionOptions } from './options.ts';
export type { EncryptOption } from './codec.ts';
export type { Duration } from './duration.ts';
export { createMemoryDenyList, type DenyList, type MemoryDenyList } from './deny-list.ts';
export { JwtSession, type SessionCookieView } from './session.ts';
export {
  JwtError,
  JwtConfigError,
  JwtInvalidError,
  JwtRevokedError,
  JwtTooLargeError,
  JwtReservedClaimError,
  JwtDenyListUnavailableError,
  JwtHeadersSentError,
  JwtSaveError,
  type JwtErrorCode,
} from './errors.ts';
