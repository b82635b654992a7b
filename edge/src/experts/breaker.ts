// A circuit breaker per expert-tier replica. After `failures` consecutive failures the replica is skipped for
// `cooldownMs`; then one trial request is let through (half-open): success closes the circuit, failure
// opens it for another cooldown. It lives in isolate memory: each isolate learns on its own, which costs a
// few failed attempts per isolate and needs no coordination.

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  failures: number;
  cooldownMs: number;
  now?: () => number;
}

export class CircuitBreaker {
  private consecutive = 0;
  private openedAt = 0;
  private trialInFlight = false;
  private opened = false;

  constructor(private readonly o: BreakerOptions) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  get state(): BreakerState {
    if (!this.opened) return 'closed';
    return this.now() - this.openedAt >= this.o.cooldownMs ? 'half-open' : 'open';
  }

  /** Milliseconds until an open circuit lets a trial through (0 when it would now). */
  get retryInMs(): number {
    return this.opened ? Math.max(0, this.openedAt + this.o.cooldownMs - this.now()) : 0;
  }

  /** Whether a request may go now; in half-open, only one trial at a time. */
  tryAcquire(): boolean {
    const s = this.state;
    if (s === 'closed') return true;
    if (s === 'open' || this.trialInFlight) return false;
    this.trialInFlight = true;
    return true;
  }

  success(): void {
    this.consecutive = 0;
    this.opened = false;
    this.trialInFlight = false;
  }

  failure(): void {
    this.trialInFlight = false;
    this.consecutive++;
    if (this.opened || this.consecutive >= this.o.failures) {
      this.opened = true;
      this.openedAt = this.now();
    }
  }
}
