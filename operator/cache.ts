// The operator's watch caches of Apps, Configs and Releases, as the other loops see them: GitOps reads one App's
// objects from them (no API call per pass, and no scan of a namespace's Releases) and hears of every change
// through subscribe(), so there is one watch per kind in the process.
import type { KubeObject } from "./kube.js";

export type CachedKind = "App" | "Config" | "Release";

export interface CacheEvent {
  kind: CachedKind;
  type: "add" | "update" | "delete";
  object: KubeObject;
}

export interface ClusterCache {
  /** An App or Config as the watch last saw it. */
  get(kind: "App" | "Config", namespace: string, name: string): KubeObject | undefined;
  /** The Releases whose spec.app is `app`, from a per-App index kept from the watch events. */
  releasesOf(namespace: string, app: string): KubeObject[];
  /** Every cached object of a kind (in one namespace, or all). */
  list(kind: CachedKind, namespace?: string): KubeObject[];
  /** Calls `listener` with every watch event of the three kinds, after the cache has taken it in; returns the unsubscribe. */
  subscribe(listener: (event: CacheEvent) => void): () => void;
}
