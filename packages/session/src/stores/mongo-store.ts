import { MongoStore } from 'connect-mongo';
import type { Collection, Document, Filter, MongoClient } from 'mongodb';
import type { SessionData } from 'express-session';
import type { Logger } from '../config.ts';
import { expiresAt, kLoaded, parseSession, userOf, type Loaded } from '../serializer.ts';

type Cb = (err?: unknown, data?: any) => void;

/** What goes in the `session` field: the JSON text (any key is safe, unlike BSON field names) and the indexed user. */
interface StoredSession {
  json: string;
  user?: string;
}

const live = () => ({ $or: [{ expires: { $exists: false } }, { expires: { $gt: new Date() } }] });

/**
 * connect-mongo 6 adjusted for correctness without the TTL monitor (expired documents are invisible to get, all
 * and length even before MongoDB deletes them), for `clear` without drop(), and for a user field to index.
 */
export class ClusterMongoStore extends MongoStore {
  readonly coll: Promise<Collection<Document>>;
  private readonly logger: Logger;
  private readonly ttlSeconds: number;

  constructor(client: MongoClient, opts: { dbName?: string; collection: string; ttl: number; userKey: string; logger: Logger }) {
    super({
      client,
      ...(opts.dbName ? { dbName: opts.dbName } : {}),
      collectionName: opts.collection,
      ttl: opts.ttl,
      // Indexes are created by ensureIndexes(): connect-mongo's own attempt would poison its collection promise
      // for ever when MongoDB is down at startup.
      autoRemove: 'disabled',
      serialize: (sess: SessionData) => {
        const user = userOf(sess, opts.userKey);
        const stored: StoredSession = { json: JSON.stringify(sess), ...(user ? { user } : {}) };
        return stored as unknown as SessionData;
      },
      unserialize: (stored: unknown) => {
        const raw = stored && typeof stored === 'object' && 'json' in stored ? (stored as StoredSession).json : stored;
        const sess = parseSession(raw, opts.logger) as (SessionData & Loaded) | null;
        if (sess && typeof raw === 'string') sess[kLoaded] = raw;
        return sess as SessionData;
      },
    });
    this.logger = opts.logger;
    this.ttlSeconds = opts.ttl;
    this.coll = Promise.resolve(client.db(opts.dbName).collection(opts.collection));
  }

  /**
   * connect-mongo's touch sets only the document's `expires`, leaving the stored cookie with the expiry of the
   * last save, so every later load would find the session due for a touch again (lazy touch lost). A loaded
   * session's text is rewritten with its new expiry instead, only where it is still the text loaded: a newer
   * save wins and a destroyed session stays destroyed.
   */
  override touch(sid: string, sess: SessionData, cb?: Cb): void {
    const s = sess as SessionData & Loaded;
    const expires = new Date(expiresAt(sess, this.ttlSeconds));
    const loaded = s[kLoaded];
    // connect-mongo keys documents by the session id itself, not an ObjectId.
    const byId = { _id: sid } as unknown as Filter<Document>;
    const update = async (c: Collection<Document>) => {
      if (loaded === undefined) return void (await c.updateOne({ ...byId, ...live() }, { $set: { expires } }));
      const json = JSON.stringify(sess);
      const r = await c.updateOne({ ...byId, 'session.json': loaded }, { $set: { 'session.json': json, expires } });
      if (r.matchedCount === 1) s[kLoaded] = json;
    };
    this.coll.then(update).then(() => cb?.(null), (err) => cb?.(err));
  }

  override all(cb: Cb): void {
    this.coll
      .then(async (c) => {
        const out: SessionData[] = [];
        for await (const doc of c.find(live())) {
          const raw = doc.session && typeof doc.session === 'object' && 'json' in doc.session ? doc.session.json : doc.session;
          const sess = parseSession(raw, this.logger);
          if (sess) out.push(Object.assign(sess, { id: String(doc._id) }));
        }
        cb(null, out);
      })
      .catch((err) => cb(err));
  }

  override length(cb: Cb): void {
    this.coll.then((c) => c.countDocuments(live())).then((n) => cb(null, n), (err) => cb(err));
  }

  async listUser(userId: string): Promise<Array<{ sid: string; sess: SessionData }>> {
    const c = await this.coll;
    const out: Array<{ sid: string; sess: SessionData }> = [];
    for await (const doc of c.find({ 'session.user': userId, ...live() })) {
      const raw = doc.session && typeof doc.session === 'object' && 'json' in doc.session ? doc.session.json : doc.session;
      const sess = parseSession(raw, this.logger);
      if (sess) out.push({ sid: String(doc._id), sess });
    }
    return out;
  }

  async destroyUser(userId: string): Promise<number> {
    const c = await this.coll;
    const { deletedCount } = await c.deleteMany({ 'session.user': userId, ...live() });
    await c.deleteMany({ 'session.user': userId });
    return deletedCount;
  }

  async ensureIndexes(): Promise<void> {
    const c = await this.coll;
    await c.createIndex({ expires: 1 }, { expireAfterSeconds: 0 });
    await c.createIndex({ 'session.user': 1 }, { sparse: true });
  }
}
