import { describe, it, expect } from 'vitest';
import { CircuitBreaker } from './breaker.ts';

describe('CircuitBreaker', () => {
  function make() {
    const t = { now: 0 };
    return { t, b: new CircuitBreaker({ failures: 3, cooldownMs: 100, now: () => t.now }) };
  }

  it('stays closed below the failure threshold, and a success resets the count', () => {
    const { b } = make();
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
  });

  it('opens after consecutive failures and refuses until the cooldown has passed', () => {
    const { t, b } = make();
    for (let i = 0; i < 3; i++) b.failure();
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBe(false);
    t.now = 60;
    expect(b.retryInMs).toBe(40);
    t.now = 100;
    expect(b.state).toBe('half-open');
  });

  it('lets one trial through when half-open; its success closes the circuit', () => {
    const { t, b } = make();
    for (let i = 0; i < 3; i++) b.failure();
    t.now = 150;
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false);
    b.success();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
  });

  it('reopens for a full cooldown when the trial fails', () => {
    const { t, b } = make();
    for (let i = 0; i < 3; i++) b.failure();
    t.now = 150;
    expect(b.tryAcquire()).toBe(true);
    b.failure();
    expect(b.state).toBe('open');
    expect(b.retryInMs).toBe(100);
  });
});
