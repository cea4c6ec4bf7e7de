import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProfileMerger, sampleTotal } from '../collector/profile-merge.js';
import { ProfileBuilder } from '../proto/pprof-builder.js';
import { decodeProfile, encodeProfileGz, type Profile } from '../proto/pprof.js';
import { cpuProfile, PERIOD_NS, stackCounts } from './helpers/cpu-profiles.js';

const T0 = 1_700_000_000_000_000_000n;
const SECOND = 1_000_000_000n;

// Window 1: api (pid 100) spins in a frame only it has; db (pid 200) shares work;main.
const window1 = {
  startNs: T0,
  endNs: T0 + 10n * SECOND,
  profile: cpuProfile(
    [
      { stack: ['spin', 'main'], pid: 100, comm: 'api', count: 3 },
      { stack: ['work', 'main'], pid: 100, comm: 'api', count: 2 },
      { stack: ['work', 'main'], pid: 200, comm: 'db', count: 1 },
    ],
    T0,
    10n * SECOND,
  ),
};

// Window 2, interned in another order (so its table ids differ) and at a coarser period.
const window2 = {
  startNs: T0 + 10n * SECOND,
  endNs: T0 + 20n * SECOND,
  profile: cpuProfile(
    [
      { stack: ['idle'], pid: 300, comm: 'cron', count: 4 },
      { stack: ['work', 'main'], pid: 100, comm: 'api', count: 5 },
    ],
    T0 + 10n * SECOND,
    10n * SECOND,
    2 * PERIOD_NS,
  ),
};

function merge(pid: number, comm: string): ProfileMerger {
  const merger = new ProfileMerger({ pid, comm });
  for (const w of [window1, window2]) merger.add(w.profile, w);
  return merger;
}

function stringsOf(p: Profile): { sampleTypes: string[]; periodType: string } {
  const s = (i: number): string => p.stringTable[i] ?? '';
  return { sampleTypes: p.sampleType.map((t) => `${s(t.type)}/${s(t.unit)}`), periodType: `${s(p.periodType?.type ?? 0)}/${s(p.periodType?.unit ?? 0)}` };
}

test('merging sums equal stacks across windows and keeps distinct ones', () => {
  const merger = merge(0, '');
  const merged = merger.result();
  assert.ok(merged);
  assert.deepEqual(
    stackCounts(merged),
    new Map([
      ['100/api main;spin', 3],
      ['100/api main;work', 7],
      ['200/db main;work', 1],
      ['300/cron idle', 4],
    ]),
  );
  assert.equal(merger.samples, 15);
  assert.equal(sampleTotal(merged.sample), 15);
  assert.equal(merger.windows, 2);
  // Shared frames are one location each in the merged tables.
  assert.equal(merged.location.length, 4);
  assert.equal(merged.function.length, 4);
});

test('the merged header spans the windows and keeps sample types and the coarsest period', () => {
  const merged = merge(0, '').result();
  assert.ok(merged);
  assert.equal(merged.timeNanos, T0);
  assert.equal(merged.durationNanos, 20n * SECOND);
  assert.equal(merged.period, 2 * PERIOD_NS);
  assert.deepEqual(stringsOf(merged), { sampleTypes: ['samples/count', 'cpu/nanoseconds'], periodType: 'cpu/nanoseconds' });
  // The cpu value is carried as summed, not recomputed from the period.
  const work = merged.sample.filter((s) => s.value[0] === 7);
  assert.deepEqual(work.map((s) => s.value), [[7, 2 * PERIOD_NS + 5 * 2 * PERIOD_NS]]);
});

test('the merged profile survives encoding and validation unchanged', () => {
  const merged = merge(0, '').result();
  assert.ok(merged);
  const decoded = decodeProfile(encodeProfileGz(merged));
  assert.deepEqual(stackCounts(decoded), stackCounts(merged));
  assert.equal(decoded.timeNanos, T0);
  assert.equal(decoded.durationNanos, 20n * SECOND);
});

test('a pid filter keeps only that process, in the windows where it ran', () => {
  const merger = merge(100, '');
  const merged = merger.result();
  assert.ok(merged);
  assert.deepEqual(stackCounts(merged), new Map([['100/api main;spin', 3], ['100/api main;work', 7]]));
  assert.equal(merger.samples, 10);
  assert.equal(merger.windows, 2);
});

test('a comm filter keeps only that process name, and the header spans only windows it ran in', () => {
  const merger = merge(0, 'cron');
  const merged = merger.result();
  assert.ok(merged);
  assert.deepEqual(stackCounts(merged), new Map([['300/cron idle', 4]]));
  assert.equal(merger.windows, 1);
  assert.equal(merged.timeNanos, T0 + 10n * SECOND);
  assert.equal(merged.durationNanos, 10n * SECOND);
  assert.equal(merged.location.length, 1, 'frames of filtered-out samples are not carried');
});

test('filters that match nothing give no profile', () => {
  const merger = merge(100, 'db');
  assert.equal(merger.result(), null);
  assert.equal(merger.windows, 0);
  assert.equal(merger.samples, 0);
});

test('inlined frames of one location come out as separate frames, innermost first', () => {
  const profile = cpuProfile([{ stack: ['spin', 'main'], pid: 1, comm: 'x', count: 2 }], T0, SECOND);
  // Make the leaf location hold an inlined `fastpath` inside `spin`.
  const nameIdx = profile.stringTable.push('fastpath') - 1;
  profile.function.push({ id: 99, name: nameIdx, systemName: nameIdx, filename: 0, startLine: 0 });
  const leaf = profile.location.find((l) => l.id === profile.sample[0]?.locationId[0]);
  assert.ok(leaf);
  leaf.line.unshift({ functionId: 99, line: 0, column: 0 });
  assert.deepEqual(stackCounts(profile), new Map([['1/x main;spin;fastpath', 2]]));

  const merger = new ProfileMerger({ pid: 0, comm: '' });
  merger.add(profile, { startNs: T0, endNs: T0 + SECOND });
  const merged = merger.result();
  assert.ok(merged);
  assert.deepEqual(stackCounts(merged), new Map([['1/x main;spin;fastpath', 2]]));
});

test('profiles with different sample types are refused, not mixed', () => {
  const b = new ProfileBuilder({
    sampleTypes: [{ type: 'alloc_space', unit: 'bytes' }],
    periodType: { type: 'space', unit: 'bytes' },
    period: 1,
    timeNanos: T0,
    durationNanos: SECOND,
  });
  b.addSample([b.location({ address: 1n, mapping: null, functionName: 'malloc' })], [64], [{ key: 'pid', num: 100 }]);
  const merger = new ProfileMerger({ pid: 0, comm: '' });
  merger.add(window1.profile, window1);
  assert.throws(
    () => merger.add(b.build(), { startNs: T0, endNs: T0 + SECOND }),
    /cannot merge a profile of \[alloc_space\/bytes\] per space\/bytes into one of \[samples\/count, cpu\/nanoseconds\] per cpu\/nanoseconds/,
  );
});
