// What a release records of its secret env: per variable, a digest of the value, never the value. A changed
// value changes the digest, so the App reconciler cuts a release and the pod template's checksum changes
// (functions/render.ts), which rolls the pods out with the new value, as Deis does for a config change.
//
// The digest is an HMAC-SHA256 of the value keyed by the Secret's uid, not a plain hash: a release is committed
// to the config repository, and a plain hash of a short value (a PIN, a 6-letter password) is guessed by trying
// every value. The uid is a random 128-bit UUID that only those who may read the Secret see, and it never
// enters Git. (A Secret deleted and made again gets a new uid, so its pods roll out once more: harmless.)
import { createHmac } from "node:crypto";
import type { Logger } from "pino";
import type { ObjectMeta, SecretKeyRef } from "../crds/v1alpha1.js";
import type { Kube, KubeObject } from "./kube.js";
import type { Cache } from "./reader.js";
import { requestedBy } from "./releases.js";

/** The digest of a variable whose Secret, or whose key in it, does not exist (the pod cannot start yet). */
export const MISSING = "missing";

/** The digest of one value of the Secret with this uid: 16 hex digits (64 bits) of HMAC-SHA256. */
export function secretDigest(uid: string, value: Buffer): string {
  return createHmac("sha256", uid).update(value).digest("hex").slice(0, 16);
}

export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

/** The digests of an App's secret env now, and who last changed each Secret they read. */
export interface SecretState {
  /** Per secretEnv variable: its value's digest, or MISSING. */
  digests: Record<string, string>;
  /** Per Secret name: who last wrote it (its slipway.dev/changed-by annotation, else its last field manager). */
  changedBy: Record<string, string | undefined>;
}

/** What is remembered of a Secret read once: enough to answer again while its resourceVersion is the same. */
interface Read {
  uid: string;
  resourceVersion: string;
  /** The digest of each key's value. */
  digests: Map<string, string>;
  changedBy: string | undefined;
}

/**
 * Reads the Secrets an App's secret env names and digests their values. With a cache of the Secrets' metadata
 * (the operator's metadata-only watch), a Secret is read again only when its resourceVersion moved; values are
 * digested as they are read and not kept.
 */
export class SecretDigests {
  readonly #kube: Kube;
  readonly #metadata: (Cache<KubeObject> & { readonly listed: boolean }) | undefined;
  readonly #reads = new Map<string, Read>();

  constructor(kube: Kube, metadata?: Cache<KubeObject> & { readonly listed: boolean }) {
    this.#kube = kube;
    this.#metadata = metadata;
  }

  async state(namespace: string, secretEnv: Readonly<Record<string, SecretKeyRef>> | undefined, log: Logger): Promise<SecretState> {
    const digests: Record<string, string> = {};
    const changedBy: Record<string, string | undefined> = {};
    const names = [...new Set(Object.values(secretEnv ?? {}).map((ref) => ref.secretName))];
    const reads = new Map(await Promise.all(names.map(async (name) => [name, await this.#read(namespace, name, log)] as const)));
    for (const [variable, ref] of Object.entries(secretEnv ?? {})) {
      digests[variable] = reads.get(ref.secretName)?.digests.get(ref.key) ?? MISSING;
    }
    for (const [name, read] of reads) changedBy[name] = read?.changedBy;
    return { digests, changedBy };
  }

  async #read(namespace: string, name: string, log: Logger): Promise<Read | undefined> {
    const key = `${namespace}/${name}`;
    const known = this.#reads.get(key);
    if (this.#metadata?.listed) {
      // The watch shows every Secret: one it does not show does not exist (its creation, when it comes, is an
      // event that runs the App's pass again); one whose resourceVersion did not move is as read last time.
      const cached = this.#metadata.get(name, namespace);
      if (!cached) {
        this.#reads.delete(key);
        return undefined;
      }
      if (known && cached.metadata.uid === known.uid && cached.metadata.resourceVersion === known.resourceVersion) return known;
    }
    const secret = await this.#kube.getIfExists<SecretObject>("v1", "Secret", namespace, name);
    if (!secret?.metadata.uid) {
      this.#reads.delete(key);
      return undefined;
    }
    const digests = new Map<string, string>();
    for (const [k, encoded] of Object.entries(secret.data ?? {})) digests.set(k, secretDigest(secret.metadata.uid, Buffer.from(encoded, "base64")));
    const read: Read = {
      uid: secret.metadata.uid,
      resourceVersion: secret.metadata.resourceVersion ?? "",
      digests,
      changedBy: requestedBy(secret.metadata as ObjectMeta, ["f:data"]),
    };
    this.#reads.set(key, read);
    log.debug({ secret: name, resourceVersion: read.resourceVersion }, "read a Secret the App's secret env names");
    return read;
  }
}
