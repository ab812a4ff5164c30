// A keyed work queue: events for one key coalesce, one key is never handled twice at once, different keys run
// concurrently up to a bound, and failures are retried with capped exponential backoff without holding up
// other keys.

/** What a handler may ask for after a successful run. */
export interface HandlerResult {
  /** Handle the key again after this many milliseconds (e.g. to poll a rollout). */
  requeueAfterMs?: number;
}

export type Handler = (key: string) => Promise<HandlerResult | void>;

export interface WorkQueueOptions {
  /** How many different keys are handled at once; default 4. */
  concurrency?: number;
  /** Delay before the first retry of a failed key; doubles on every further failure. Default 500 ms. */
  baseDelayMs?: number;
  /** Longest delay between retries; default 5 minutes. */
  maxDelayMs?: number;
  /** Called with the number of keys waiting whenever it changes (for the queue depth gauge). */
  onDepth?: (depth: number) => void;
  /** Called when a handler fails, with the delay before its retry. */
  onError?: (key: string, err: unknown, retryInMs: number) => void;
}

export class WorkQueue {
  readonly #handler: Handler;
  readonly #concurrency: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #onDepth: (depth: number) => void;
  readonly #onError: (key: string, err: unknown, retryInMs: number) => void;
  /** Keys waiting to run; never contains a running key. */
  readonly #waiting = new Set<string>();
  /**
   * The waiting keys in arrival order, read from #head. Taking the first entry of a Set and deleting it slows
   * down as deleted entries pile up (V8 keeps them as holes), so large backlogs are read from an array.
   */
  #order: string[] = [];
  #head = 0;
  readonly #running = new Map<string, Promise<void>>();
  /** Running keys that were enqueued again meanwhile: they run once more when the current run ends. */
  readonly #dirty = new Set<string>();
  /** Callers of enqueue() waiting for the next run of a key to finish. */
  readonly #settle = new Map<string, (() => void)[]>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  #stopped = false;
  #lastDepth = -1;

  constructor(handler: Handler, options: WorkQueueOptions = {}) {
    this.#handler = handler;
    this.#concurrency = Math.max(1, options.concurrency ?? 4);
    this.#baseDelayMs = options.baseDelayMs ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 5 * 60_000;
    this.#onDepth = options.onDepth ?? (() => undefined);
    this.#onError = options.onError ?? (() => undefined);
  }

  /** Keys waiting to be handled (not counting those running or waiting for a retry timer). */
  get depth(): number {
    return this.#waiting.size + this.#dirty.size;
  }

  /** True when no key is waiting, running or due later (a retry or an enqueueAfter). */
  get idle(): boolean {
    return this.#waiting.size + this.#dirty.size + this.#running.size + this.#timers.size === 0;
  }

  /** How many times in a row the key has failed. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /**
   * Asks for `key` to be handled. Returns a promise that settles once a run of the key that started after this
   * call has finished, whether it succeeded or failed (a failure is retried on its own).
   */
  enqueue(key: string): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    const settled = new Promise<void>((resolve) => {
      const list = this.#settle.get(key) ?? [];
      list.push(resolve);
      this.#settle.set(key, list);
    });
    this.#cancelTimer(key);
    if (this.#running.has(key)) this.#dirty.add(key);
    else this.#addWaiting(key);
    this.#reportDepth();
    this.#pump();
    return settled;
  }

  /** Handles `key` after `delayMs`, unless it is enqueued (or already scheduled) sooner. */
  enqueueAfter(key: string, delayMs: number): void {
    if (this.#stopped) return;
    const at = Date.now() + delayMs;
    const existing = this.#timers.get(key);
    if (existing && existing.at <= at) return;
    this.#cancelTimer(key);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      void this.enqueue(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Stops taking work and drops waiting keys and retries; resolves when the runs in flight have finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const key of [...this.#timers.keys()]) this.#cancelTimer(key);
    this.#waiting.clear();
    this.#order = [];
    this.#head = 0;
    this.#dirty.clear();
    this.#reportDepth();
    await Promise.allSettled([...this.#running.values()]);
    for (const resolvers of this.#settle.values()) for (const resolve of resolvers) resolve();
    this.#settle.clear();
  }

  #pump(): void {
    while (!this.#stopped && this.#running.size < this.#concurrency && this.#waiting.size > 0) {
      const key = this.#takeWaiting();
      const waiters = this.#settle.get(key) ?? [];
      this.#settle.delete(key);
      this.#running.set(key, this.#run(key, waiters));
    }
    this.#reportDepth();
  }

  async #run(key: string, waiters: (() => void)[]): Promise<void> {
    try {
      const result = await this.#handler(key);
      this.#failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.enqueueAfter(key, result.requeueAfterMs);
    } catch (err) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const delay = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** Math.min(failures - 1, 30));
      try {
        this.#onError(key, err, delay);
      } finally {
        this.enqueueAfter(key, delay);
      }
    } finally {
      this.#running.delete(key);
      for (const resolve of waiters) resolve();
      if (this.#dirty.delete(key) && !this.#stopped) {
        // It runs again right away, which supersedes any retry just scheduled.
        this.#cancelTimer(key);
        this.#addWaiting(key);
      }
      this.#pump();
    }
  }

  #addWaiting(key: string): void {
    if (this.#waiting.has(key)) return;
    this.#waiting.add(key);
    this.#order.push(key);
  }

  /** The longest-waiting key; only called while #waiting is not empty. */
  #takeWaiting(): string {
    for (;;) {
      const key = this.#order[this.#head++] as string;
      if (this.#head > 1024 && this.#head * 2 > this.#order.length) {
        this.#order = this.#order.slice(this.#head);
        this.#head = 0;
      }
      if (this.#waiting.delete(key)) return key;
    }
  }

  #cancelTimer(key: string): void {
    const existing = this.#timers.get(key);
    if (existing) clearTimeout(existing.timer);
    this.#timers.delete(key);
  }

  #reportDepth(): void {
    const depth = this.depth;
    if (depth === this.#lastDepth) return;
    this.#lastDepth = depth;
    this.#onDepth(depth);
  }
}

/**
 * A periodic full pass over every key, spread evenly over the interval: each tick hands over the next share of
 * the keys listed at the start of the round. Queued all at once, 3,000 Apps' passes held up the passes that
 * events ask for (a user's edit waited 13 s behind them in the bench).
 */
export class Resync {
  readonly #list: () => string[];
  readonly #enqueue: (key: string) => void;
  readonly #ticks: number;
  #round: string[] = [];
  #next = 0;
  #tick = 0;

  /** `ticksPerRound` ticks make one round, in which every key listed at its start is enqueued once. */
  constructor(list: () => string[], enqueue: (key: string) => void, ticksPerRound: number) {
    this.#list = list;
    this.#enqueue = enqueue;
    this.#ticks = Math.max(1, Math.floor(ticksPerRound));
  }

  /** Enqueues this tick's share of the round: the keys up to the (tick / ticksPerRound) part of it. */
  tick(): void {
    if (this.#tick === 0) {
      this.#round = this.#list();
      this.#next = 0;
    }
    this.#tick++;
    const end = Math.ceil((this.#round.length * this.#tick) / this.#ticks);
    for (; this.#next < end; this.#next++) this.#enqueue(this.#round[this.#next] as string);
    if (this.#tick >= this.#ticks) this.#tick = 0;
  }

  /**
   * After one interval (everything was just listed and passed at the start), ticks every `intervalMs /
   * ticksPerRound` ms until the returned function is called.
   */
  start(intervalMs: number): () => void {
    let timer: NodeJS.Timeout | undefined;
    const first = setTimeout(() => {
      timer = setInterval(() => this.tick(), Math.max(1, intervalMs / this.#ticks));
      timer.unref();
    }, intervalMs);
    first.unref();
    return () => {
      clearTimeout(first);
      clearInterval(timer);
    };
  }
}
