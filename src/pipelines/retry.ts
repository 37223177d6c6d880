// Retry policy as data (DESIGN/STYLE: Temporal's RetryPolicy), applied in one
// place: the datum loop in job-runner.ts.

export interface RetryPolicy {
  /** Attempts in all, the first one included (the spec's datum_tries). */
  maxAttempts: number;
  initialIntervalMs: number;
  backoffCoefficient: number;
  maximumIntervalMs: number;
}

export const DEFAULT_RETRY: Omit<RetryPolicy, 'maxAttempts'> = {
  initialIntervalMs: 200,
  backoffCoefficient: 2,
  maximumIntervalMs: 10_000,
};

/** Delay before attempt `attempt` (2, 3, ...) of a datum. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const raw = policy.initialIntervalMs * policy.backoffCoefficient ** Math.max(0, attempt - 2);
  return Math.min(policy.maximumIntervalMs, raw);
}
