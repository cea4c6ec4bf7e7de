// Each workload in test/workloads under the real agent (bpftrace, syscall
// signals) and collector, two at a time: the collector's verdict and kind
// for the workload's pid must be the ones its manifest expects.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fmt, VerdictHarness, type WorkloadOutcome } from './helpers/verdict-harness.js';
import { WORKLOADS } from './helpers/workloads.js';

const harness = new VerdictHarness({ windowSeconds: 5, windowsPerWorkload: 5 });

before(() => harness.start());
after(() => harness.stop());

describe('verdicts for the test workloads', () => {
  for (let i = 0; i < WORKLOADS.length; i += 2) {
    const pair = WORKLOADS.slice(i, i + 2);
    let outcomes: WorkloadOutcome[] = [];
    describe(pair.map((w) => w.name).join(' + '), () => {
      before(async () => {
        outcomes = await harness.run(pair);
      });
      for (const w of pair) {
        test(`${w.name} is ${fmt(w.expected)}`, () => {
          const o = outcomes.find((x) => x.workload === w);
          assert.ok(o, 'the workload ran');
          assert.equal(fmt(o.predicted), fmt(w.expected), `evidence: ${o.evidence}`);
          if (w.expected.verdict === 'busy-loop') {
            const episode = o.episodes.find((e) => e.verdict === 'busy-loop');
            assert.ok(episode && episode.windows >= 2, 'reported only after two consecutive windows');
            assert.ok(episode.evidence.length > 0 && episode.score > 0 && episode.score <= 1);
          }
        });
      }
    });
  }
});
