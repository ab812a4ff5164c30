// A bounded map for the GitOps caches (trees, blobs, commits, canonical texts).

/** A map that forgets its least recently used entries once their total size passes a bound. */
export class Lru<V> {
  readonly #map = new Map<string, V>();
  #size = 0;
  constructor(readonly max: number, readonly sizeOf: (value: V) => number) {}
  get(key: string): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }
  set(key: string, value: V): void {
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#size -= this.sizeOf(old);
      this.#map.delete(key);
    }
    this.#map.set(key, value);
    this.#size += this.sizeOf(value);
    for (const [k, v] of this.#map) {
      if (this.#size <= this.max || k === key) break;
      this.#map.delete(k);
      this.#size -= this.sizeOf(v);
    }
  }
}
