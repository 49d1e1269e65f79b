/** Where a body was put: its reference (what a result carries) and its SHA-256. */
export interface StoredBody {
  /** A URI that names the body's object: `file:/dir/sha256/ab/<hex>` or `s3://bucket/prefix/sha256/ab/<hex>`. */
  ref: string;
  /** Hex SHA-256 of the bytes: the object's name, so the same body is one object. */
  sha256: string;
}

/**
 * A content-addressed store of bodies too large to keep in Redis. `put` is idempotent: the same
 * bytes always land in the same object, so a retried job rewrites it instead of adding one.
 */
export interface BodyStore {
  /** The store's URI as configured (`file:DIR`, `s3://bucket/prefix`), for messages. */
  readonly location: string;
  /** Writes the bytes durably (before the result that names them is written) and answers where. */
  put(bytes: Buffer): Promise<StoredBody>;
  /** Reads a body this store (or one at the same location) put; throws when it is missing. */
  get(ref: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** The object path of a body under a store's root: `sha256/ab/<hex>`. */
export function bodyPath(sha256: string): string {
  return `sha256/${sha256.slice(0, 2)}/${sha256}`;
}
