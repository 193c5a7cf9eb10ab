import { scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto';

/**
 * The demo accounts. A real app keeps users in a database; what matters here is that the password is stored as a
 * salted scrypt hash, compared in constant time, and that an unknown user costs the same work as a wrong password
 * (so response time does not reveal which usernames exist).
 */
const USERS: ReadonlyMap<string, string> = new Map([
  ['alice', 'scrypt$16384$8$1$6CpCr9tGzZqzIMBe31Bq9w$daUVg33zOniu_EdAeUwsaUH0rUpBDJsfbyShKq_q-hQ'],
  // A second account (bob / builder): a lock on one account must not stop another from signing in.
  ['bob', 'scrypt$16384$8$1$h-2SovRGNjCohDrzXIEE1w$5JgfIU-rrBpQT1Mtl-pU5Ihyu6fWMyzwzKUCGSGfXMc'],
]);
const DECOY = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

function derive(password: BinaryLike, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Resolves to the username when the credentials match, otherwise undefined. */
export async function authenticate(username: string, password: string): Promise<string | undefined> {
  const stored = USERS.get(username);
  const [, n, r, p, salt, hash] = (stored ?? DECOY).split('$');
  const expected = Buffer.from(hash!, 'base64url');
  const actual = await derive(password, Buffer.from(salt!, 'base64url'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  });
  return stored !== undefined && timingSafeEqual(actual, expected) ? username : undefined;
}
