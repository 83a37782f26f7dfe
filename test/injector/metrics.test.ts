import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createInjectorMetrics,
  DURATION_BUCKETS_SECONDS,
  escapeLabelValue,
  MAX_NAMESPACES,
} from '../../injector/metrics.ts';

/** `name{labels} value` lines as a map from `name{labels}` to the number. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(match, `a well-formed sample line: ${JSON.stringify(line)}`);
    out.set(match[1]!, Number(match[2]));
  }
  return out;
}

describe('injector metrics: text format', () => {
  it('starts with every result at zero and an empty histogram', () => {
    const text = createInjectorMetrics().render();
    const s = samples(text);
    for (const result of ['injected', 'unchanged', 'refused', 'bad_request', 'error']) {
      assert.equal(s.get(`esa_injector_admission_reviews_total{result="${result}"}`), 0, result);
    }
    assert.equal(s.get('esa_injector_admission_review_duration_seconds_bucket{le="+Inf"}'), 0);
    assert.equal(s.get('esa_injector_admission_review_duration_seconds_count'), 0);
    assert.equal(s.get('esa_injector_admission_review_duration_seconds_sum'), 0);
    assert.ok(!text.includes('esa_injector_injections_total{'), 'no namespace before an injection');
    assert.ok(text.endsWith('\n'), 'the text ends with a line feed');
  });

  it('declares HELP and TYPE once per metric, before its samples', () => {
    const metrics = createInjectorMetrics();
    metrics.observeReview('injected', 0.002, 'team-a');
    metrics.setCertificateNotAfter(new Date('2030-01-01T00:00:00Z'));
    const lines = metrics.render().split('\n');
    const types: [string, string][] = [
      ['esa_injector_admission_reviews_total', 'counter'],
      ['esa_injector_admission_review_duration_seconds', 'histogram'],
      ['esa_injector_injections_total', 'counter'],
      ['esa_injector_serving_certificate_not_after_seconds', 'gauge'],
    ];
    for (const [name, type] of types) {
      const help = lines.filter((l) => l.startsWith(`# HELP ${name} `));
      const typeLines = lines.filter((l) => l === `# TYPE ${name} ${type}`);
      assert.equal(help.length, 1, `one HELP for ${name}`);
      assert.equal(typeLines.length, 1, `one TYPE ${type} for ${name}`);
      const firstSample = lines.findIndex((l) => l.startsWith(name) && !l.startsWith('#'));
      assert.ok(lines.indexOf(typeLines[0]!) < firstSample, `TYPE before the samples of ${name}`);
    }
  });

  it('counts reviews by result', () => {
    const metrics = createInjectorMetrics();
    const results = ['injected', 'injected', 'refused', 'bad_request', 'error', 'unchanged'] as const;
    for (const r of results) metrics.observeReview(r, 0.001, 'team-a');
    const s = samples(metrics.render());
    assert.equal(s.get('esa_injector_admission_reviews_total{result="injected"}'), 2);
    assert.equal(s.get('esa_injector_admission_reviews_total{result="refused"}'), 1);
    assert.equal(s.get('esa_injector_admission_reviews_total{result="bad_request"}'), 1);
    assert.equal(s.get('esa_injector_admission_reviews_total{result="error"}'), 1);
    assert.equal(s.get('esa_injector_admission_reviews_total{result="unchanged"}'), 1);
  });

  it('fills cumulative buckets from 1 ms to 1 s, with +Inf, _sum and _count', () => {
    const metrics = createInjectorMetrics();
    const durations = [0.0005, 0.001, 0.003, 0.2, 0.9, 4];
    for (const d of durations) metrics.observeReview('unchanged', d);
    const s = samples(metrics.render());
    const bucket = (le: string) =>
      s.get(`esa_injector_admission_review_duration_seconds_bucket{le="${le}"}`);

    assert.deepEqual(
      DURATION_BUCKETS_SECONDS,
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    );
    // A value equal to a bound counts in that bucket (le means "less or equal").
    assert.equal(bucket('0.001'), 2);
    assert.equal(bucket('0.0025'), 2);
    assert.equal(bucket('0.005'), 3);
    assert.equal(bucket('0.1'), 3);
    assert.equal(bucket('0.25'), 4);
    assert.equal(bucket('1'), 5);
    assert.equal(bucket('+Inf'), 6);
    assert.equal(s.get('esa_injector_admission_review_duration_seconds_count'), 6);
    const sum = s.get('esa_injector_admission_review_duration_seconds_sum')!;
    assert.ok(Math.abs(sum - 5.1045) < 1e-9, `sum ${sum}`);
  });

  it('counts injections by namespace only, for injected reviews only', () => {
    const metrics = createInjectorMetrics();
    metrics.observeReview('injected', 0.001, 'team-a');
    metrics.observeReview('injected', 0.001, 'team-a');
    metrics.observeReview('injected', 0.001, 'team-b');
    metrics.observeReview('refused', 0.001, 'team-c');
    const text = metrics.render();
    const s = samples(text);
    assert.equal(s.get('esa_injector_injections_total{namespace="team-a"}'), 2);
    assert.equal(s.get('esa_injector_injections_total{namespace="team-b"}'), 1);
    assert.ok(!text.includes('team-c'), 'a refused pod adds no namespace');
    const labels = [...s.keys()].flatMap((k) => [...k.matchAll(/(\w+)="/g)].map((m) => m[1]));
    assert.deepEqual([...new Set(labels)].sort(), ['le', 'namespace', 'result']);
  });

  it('counts a namespace that is not a DNS label, or one past the cap, under namespace=""', () => {
    const metrics = createInjectorMetrics();
    metrics.observeReview('injected', 0.001, 'Not "a" namespace\n');
    for (let i = 0; i < MAX_NAMESPACES; i++) metrics.observeReview('injected', 0, `ns-${i}`);
    metrics.observeReview('injected', 0.001, 'one-too-many');
    metrics.observeReview('injected', 0.001, 'ns-7');
    const s = samples(metrics.render());
    assert.equal(s.get('esa_injector_injections_total{namespace=""}'), 2);
    assert.equal(s.get('esa_injector_injections_total{namespace="ns-7"}'), 2, 'known ones still count');
    assert.equal(s.has('esa_injector_injections_total{namespace="one-too-many"}'), false);
  });

  it('reports the certificate expiry as Unix seconds once it is known', () => {
    const metrics = createInjectorMetrics();
    assert.ok(!metrics.render().includes('not_after'));
    metrics.setCertificateNotAfter(new Date('2030-01-01T00:00:00Z'));
    const s = samples(metrics.render());
    assert.equal(s.get('esa_injector_serving_certificate_not_after_seconds'), 1893456000);
  });

  const escapes = [
    { name: 'a backslash', value: 'a\\b', expected: 'a\\\\b' },
    { name: 'a double quote', value: 'a"b', expected: 'a\\"b' },
    { name: 'a line feed', value: 'a\nb', expected: 'a\\nb' },
    { name: 'plain text', value: 'team-a', expected: 'team-a' },
  ];
  for (const c of escapes) {
    it(`escapes ${c.name} in a label value`, () => {
      assert.equal(escapeLabelValue(c.value), c.expected);
    });
  }
});
