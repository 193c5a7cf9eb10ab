import { ConfigError } from '../errors.ts';
import { redactUrl } from './url.ts';

// MONGO_URL checked without loading the driver, for what matters to sessions: a wrong or partial URL is a startup
// error naming the part; the options a replica set is run with (replicaSet, readPreference, w) are left to the
// driver as written, with a warning where they can lose or hide a login. The driver still parses the whole URL
// when the store starts (mongo.ts turns its refusal into a ConfigError too).

const MODES = ['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest'];
const EXAMPLE = 'mongodb://user:pass@mongo-1:27017,mongo-2:27017,mongo-3:27017/app?replicaSet=rs0';

function fail(where: string, url: string, problem: string, example = EXAMPLE): never {
  throw new ConfigError(`clusterSession: ${where} ${JSON.stringify(redactUrl(url))}: ${problem}. Fix: write it like ${example}.`);
}

/**
 * Checks a mongodb:// or mongodb+srv:// URL; returns warnings (never secrets) for options that are valid but risky
 * for sessions. `where` names the option in messages, e.g. "MONGO_URL".
 */
export function checkMongoUrl(url: string, where: string): string[] {
  const m = /^(mongodb(?:\+srv)?):\/\/([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?(#.*)?$/.exec(url);
  if (!m) fail(where, url, /^mongodb(\+srv)?:\/\//.test(url) ? 'is not a MongoDB URL' : 'is not a mongodb:// or mongodb+srv:// URL');
  const [, scheme, authority, db, query = '', fragment] = m;
  if (fragment) fail(where, url, 'has a #fragment, which no MongoDB URL has (a # in a password must be written %23)');
  const hosts = authority!.slice(authority!.lastIndexOf('@') + 1);
  if (hosts === '') fail(where, url, 'names no host');
  const list = hosts.split(',');
  list.forEach((entry, i) => {
    const n = i + 1;
    if (entry === '') fail(where, url, `host #${n} is empty (two commas in a row, or a trailing comma)`);
    const hp = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(.*))?$/.exec(entry);
    if (!hp) fail(where, url, `host #${n} "${entry}" is not host:port`);
    if (hp[2] !== undefined && (!/^\d{1,5}$/.test(hp[2]) || Number(hp[2]) < 1 || Number(hp[2]) > 65_535)) {
      fail(where, url, `host #${n} "${entry}" has port "${hp[2]}": a port is a number from 1 to 65535`);
    }
    if (scheme === 'mongodb+srv' && hp[2] !== undefined) fail(where, url, 'a mongodb+srv:// URL names a DNS name without a port (the SRV record has the ports)', 'mongodb+srv://user:pass@cluster0.example.net/app');
  });
  if (scheme === 'mongodb+srv' && list.length > 1) fail(where, url, 'a mongodb+srv:// URL names one DNS name, not a list', 'mongodb+srv://user:pass@cluster0.example.net/app');
  if (db && /[/\\. "$*<>:|?]/.test(decodeURIComponent(db))) fail(where, url, `the database name "${db}" has a character MongoDB does not allow (/\\. "$*<>:|?)`);

  const params = new URLSearchParams(query);
  // The driver matches option names case-insensitively; so does this.
  const get = (name: string) => [...params].find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
  const warnings: string[] = [];
  const replicaSet = get('replicaSet');
  if (replicaSet !== undefined && replicaSet.trim() === '') fail(where, url, 'replicaSet is empty: it is the name in the replica set config (rs.conf()._id)');
  const mode = get('readPreference');
  if (mode !== undefined && !MODES.includes(mode)) fail(where, url, `readPreference "${mode}" is not one of ${MODES.join(', ')} (exactly so written)`);
  if (mode && mode !== 'primary' && mode !== 'primaryPreferred') {
    warnings.push(
      `${where}: readPreference=${mode} reads sessions from secondaries, which lag the primary: a login, a change or a logout just written may not be seen by the next request. Sessions are best read with the default readPreference=primary.`,
    );
  }
  const staleness = get('maxStalenessSeconds');
  if (staleness !== undefined) {
    if (!/^-?\d+$/.test(staleness) || (Number(staleness) !== -1 && Number(staleness) < 90)) fail(where, url, `maxStalenessSeconds "${staleness}" must be -1 (none) or at least 90`);
    if (!mode || mode === 'primary') fail(where, url, 'maxStalenessSeconds needs a readPreference other than primary');
  }
  const w = get('w');
  if (w !== undefined) {
    if (w === '' || /^-/.test(w)) fail(where, url, `w "${w}" is not a write concern: majority, a number of members (0, 1, 2, ...) or a tag set name`);
    if (w === '0') warnings.push(`${where}: w=0 does not wait for any acknowledgement: a login the store could not write is still answered 200 and lost. Use the default (w=majority).`);
  }
  if (get('directConnection') === 'true' && list.length > 1) fail(where, url, `directConnection=true talks to one server, but ${list.length} hosts are listed`);
  return warnings;
}

/**
 * The client options the store adds to the URL's: its own only where the URL does not set them (an option in the
 * URL is the operator's choice; the driver would let the options object win).
 */
export function mongoClientOptions(storeTimeout: number, url = ''): Record<string, number> {
  const defaults: Record<string, number> = { serverSelectionTimeoutMS: storeTimeout, connectTimeoutMS: Math.max(storeTimeout, 1000), maxPoolSize: 20 };
  const inUrl = new Set([...new URLSearchParams(url.split('?')[1]?.split('#')[0] ?? '').keys()].map((k) => k.toLowerCase()));
  return Object.fromEntries(Object.entries(defaults).filter(([k]) => !inUrl.has(k.toLowerCase())));
}
