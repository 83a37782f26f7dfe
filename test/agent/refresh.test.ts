import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, jittered, nextDelay, refreshLoop } from '../../agent/refresh.ts';
import type { SyncOutcome } from '../../agent/sync.ts';

const ok = (refreshIntervalMs: number, more: Partial<SyncOutcome> = {}): SyncOutcome => ({
  externalSecret: 'ns/es',
  ok: true,
  changed: false,
  skipped: false,
  refreshIntervalMs,
  ...more,
});
const failed: SyncOutcome = {
  externalSecret: 'ns/es',
  ok: false,
  changed: false,
  skipped: false,
  message: 'x',
};
const backoff = { initialMs: 5_000, maxMs: 300_000 };

describe('jittered', () => {
  const cases = [
    { name: 'lowest draw is 10% early', random: 0, want: 900 },
    { name: 'middle draw is on time', random: 0.5, want: 1_000 },
    { name: 'highest draw is almost 10% late', random: 0.999999, want: 1_100 },
  ];
  for (const c of cases)
    it(c.name, () =>
      assert.equal(
        jittered(1_000, () => c.random),
        c.want,
      ),
    );
});

describe('backoffDelay', () => {
  const cases = [
    { name: 'first failure waits the initial delay', failures: 1, want: 5_000 },
    { name: 'doubles per failure', failures: 3, want: 20_000 },
    { name: 'stops at the cap', failures: 20, want: 300_000 },
  ];
  for (const c of cases)
    it(c.name, () =>
      assert.equal(
        backoffDelay(c.failures, backoff, () => 0.5),
        c.want,
      ),
    );

  it('never exceeds the cap, even with jitter', () =>
    assert.equal(
      backoffDelay(20, backoff, () => 0.999),
      300_000,
    ));
});

describe('nextDelay', () => {
  it('waits the refresh interval after a good pass', () =>
    assert.equal(
      nextDelay(ok(60_000), 0, backoff, () => 0.5),
      60_000,
    ));
  it('waits only the rest of the interval after a skipped pass', () =>
    assert.equal(
      nextDelay(ok(60_000, { skipped: true, nextInMs: 10_000 }), 0, backoff, () => 0.5),
      10_000,
    ));
  it('never refreshes for interval 0', () => assert.equal(nextDelay(ok(0), 0, backoff), 'never'));
  it('backs off after a failure, whatever the interval', () =>
    assert.equal(
      nextDelay(failed, 2, backoff, () => 0.5),
      10_000,
    ));
});

describe('refreshLoop', () => {
  it('retries with growing delays, resets after success and stops on abort', async () => {
    const controller = new AbortController();
    const results = [failed, failed, ok(1), failed];
    const seen: [boolean, number, number | 'never'][] = [];
    await refreshLoop(
      async () => {
        const next = results.shift();
        if (!next) {
          controller.abort();
          return failed;
        }
        return next;
      },
      controller.signal,
      {
        backoff: { initialMs: 1, maxMs: 8 },
        random: () => 0.5,
        onPass: (o, failures, delay) => seen.push([o.ok, failures, delay]),
      },
    );
    assert.deepEqual(seen, [
      [false, 1, 1],
      [false, 2, 2],
      [true, 0, 1],
      [false, 1, 1],
    ]);
  });

  it('passes first=true only to the first pass', async () => {
    const controller = new AbortController();
    const firsts: boolean[] = [];
    await refreshLoop(
      async (first) => {
        firsts.push(first);
        if (firsts.length === 3) controller.abort();
        return ok(1);
      },
      controller.signal,
      { backoff },
    );
    assert.deepEqual(firsts, [true, false, false]);
  });

  it('waits for the stop signal after a good pass with interval 0', async () => {
    const controller = new AbortController();
    let passes = 0;
    const loop = refreshLoop(async () => (passes++, ok(0)), controller.signal, { backoff });
    await new Promise((r) => setTimeout(r, 30));
    controller.abort();
    await loop;
    assert.equal(passes, 1);
  });
});
