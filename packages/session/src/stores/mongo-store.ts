import { MongoStore } from 'connect-mongo';
import type { Collection, Document, Filter, MongoClient } from 'mongodb';
import type { SessionData } from 'express-session';
import type { Logger } from '../config.ts';
import { expiresAt, loadedOf, parseSession, setLoaded, userOf } from '../serializer.ts';

type Cb = (err?: unknown, data?: any) => void;

/**
 * A document is connect-mongo's: `{ _id: sid, session: "<JSON text>", expires }` (the text keeps any key safe,
 * unlike BSON field names), plus a top-level `user` for logoutEverywhere(), which connect-mongo ignores. So a
 * session connect-mongo 5/6 wrote is read and rewritten in place, and one we wrote still reads under connect-mongo
 * (a rollback keeps the logins). Earlier versions of this store kept `session: { json, user }`: still read.
 */
interface OlderStoredSession {
  json: string;
  user?: string;
}
const textOf = (stored: unknown): unknown => (stored && typeof stored === 'object' && 'json' in stored ? (stored as OlderStoredSession).json : stored);
const noop = () => {};

const live = () => ({ $or: [{ expires: { $exists: false } }, { expires: { $gt: new Date() } }] });

/**
 * connect-mongo 6 adjusted for correctness without the TTL monitor (expired documents are invisible to get, all
 * and length even before MongoDB deletes them), for `clear` without drop(), and for a user field to index.
 */
export class ClusterMongoStore extends MongoStore {
  readonly coll: Promise<Collection<Document>>;
  private readonly logger: Logger;
  private readonly ttlSeconds: number;
  private readonly userKey: string;

  constructor(client: MongoClient, opts: { dbName?: string; collection: string; ttl: number; userKey: string; logger: Logger }) {
    super({
      client,
      ...(opts.dbName ? { dbName: opts.dbName } : {}),
      collectionName: opts.collection,
      ttl: opts.ttl,
      // Indexes are created by ensureIndexes(): connect-mongo's own attempt would poison its collection promise
      // for ever when MongoDB is down at startup.
      autoRemove: 'disabled',
      // set() below writes the documents itself; connect-mongo's own serializer is only read through unserialize.
      serialize: (sess: SessionData) => JSON.stringify(sess) as unknown as SessionData,
      unserialize: (stored: unknown) => {
        const raw = textOf(stored);
        const sess = parseSession(raw, opts.logger);
        if (sess && typeof raw === 'string') setLoaded(sess, raw);
        return sess as SessionData;
      },
    });
    this.logger = opts.logger;
    this.ttlSeconds = opts.ttl;
    this.userKey = opts.userKey;
    this.coll = Promise.resolve(client.db(opts.dbName).collection(opts.collection));
  }

  /** connect-mongo's document, with the indexed user beside it (dropped when the session no longer has one). */
  override set(sid: string, sess: SessionData, cb: Cb = noop): void {
    const user = userOf(sess, this.userKey);
    const $set = { session: JSON.stringify(sess), expires: new Date(expiresAt(sess, this.ttlSeconds)), ...(user ? { user } : {}) };
    const update = user ? { $set } : { $set, $unset: { user: '' } };
    this.coll
      .then((c) => c.updateOne({ _id: sid } as unknown as Filter<Document>, update, { upsert: true }))
      .then(() => cb(null), (err) => cb(err));
  }

  /**
   * connect-mongo's touch sets only the document's `expires`, leaving the stored cookie with the expiry of the
   * last save, so every later load would find the session due for a touch again (lazy touch lost). A loaded
   * session's text is rewritten with its new expiry instead, only where it is still the text loaded: a newer
   * save wins and a destroyed session stays destroyed.
   */
  override touch(sid: string, sess: SessionData, cb?: Cb): void {
    const expires = new Date(expiresAt(sess, this.ttlSeconds));
    const loaded = loadedOf(sess);
    // connect-mongo keys documents by the session id itself, not an ObjectId.
    const byId = { _id: sid } as unknown as Filter<Document>;
    const update = async (c: Collection<Document>) => {
      if (loaded === undefined) return void (await c.updateOne({ ...byId, ...live() }, { $set: { expires } }));
      const json = JSON.stringify(sess);
      const user = userOf(sess, this.userKey);
      // Rewritten (in connect-mongo's form) only while it is still the text loaded, in either form.
      const r = await c.updateOne(
        { ...byId, $or: [{ session: loaded }, { 'session.json': loaded }] },
        { $set: { session: json, expires, ...(user ? { user } : {}) } },
      );
      if (r.matchedCount === 1) setLoaded(sess, json);
    };
    this.coll.then(update).then(() => cb?.(null), (err) => cb?.(err));
  }

  override all(cb: Cb): void {
    this.coll
      .then(async (c) => {
        const out: SessionData[] = [];
        for await (const doc of c.find(live())) {
          const sess = parseSession(textOf(doc.session), this.logger);
          // As connect-mongo's all(): the sessions as stored, no field added.
          if (sess) out.push(sess);
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
    // The user is a top-level field of the document (the session itself is JSON text); earlier documents kept it
    // at session.user.
    for await (const doc of c.find({ $and: [{ $or: [{ user: userId }, { 'session.user': userId }] }, live()] })) {
      const raw = doc.session && typeof doc.session === 'object' && 'json' in doc.session ? doc.session.json : doc.session;
      const sess = parseSession(raw, this.logger);
      if (sess) out.push({ sid: String(doc._id), sess });
    }
    return out;
  }

  async destroyUser(userId: string): Promise<number> {
    const c = await this.coll;
    const mine = { $or: [{ user: userId }, { 'session.user': userId }] };
    const { deletedCount } = await c.deleteMany({ $and: [mine, live()] });
    await c.deleteMany(mine);
    return deletedCount;
  }

  async ensureIndexes(): Promise<void> {
    const c = await this.coll;
    await c.createIndex({ expires: 1 }, { expireAfterSeconds: 0 });
    await c.createIndex({ user: 1 }, { sparse: true });
    await c.createIndex({ 'session.user': 1 }, { sparse: true });
  }
}
