import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { formatFolded } from '../cli/format-folded.js';
import { formatTop, topFunctions } from '../cli/format-top.js';
import { DecodeError } from '../proto/codec.js';
import { decodeProfile, encodeProfile, encodeProfileGz } from '../proto/pprof.js';
import { CPU_PERIOD_TYPE, CPU_SAMPLE_TYPES, ProfileBuilder, periodNanos, type MappingSpec } from '../proto/pprof-builder.js';
import { goPprofTop } from './helpers/go-pprof.js';

const app: MappingSpec = { start: 0x555500000000n, limit: 0x555500010000n, fileOffset: 0n, file: '/usr/bin/app', buildId: 'abc123', hasFunctions: true };

function sampleProfile() {
  const b = new ProfileBuilder({
    sampleTypes: CPU_SAMPLE_TYPES,
    periodType: CPU_PERIOD_TYPE,
    period: periodNanos(19),
    timeNanos: 1763805600_000_000_000n,
    durationNanos: 10_000_000_000n,
  });
  const main = b.location({ address: 0x555500001000n, mapping: app, functionName: 'main' });
  const spin = b.location({ address: 0x555500002000n, mapping: app, functionName: 'spin_forever' });
  const unnamed = b.location({ address: 0x555500003abcn, mapping: app, functionName: null });
  const kernel = b.location({ address: 0xffffffff81000130n, mapping: null, functionName: 'entry_SYSCALL_64' });
  const labels = [
    { key: 'pid', num: 42 },
    { key: 'comm', str: 'app' },
  ];
  b.addSample([spin, main], [30, 30 * periodNanos(19)], labels);
  b.addSample([spin, main], [10, 10 * periodNanos(19)], labels); // same stack+labels: summed
  b.addSample([unnamed, main], [5, 5 * periodNanos(19)], labels);
  b.addSample([kernel, main], [5, 5 * periodNanos(19)], [{ key: 'pid', num: 7 }, { key: 'comm', str: 'other' }]);
  return b.build();
}

test('builder interns strings and sums identical samples; string 0 is ""', () => {
  const p = sampleProfile();
  assert.equal(p.stringTable[0], '');
  assert.equal(new Set(p.stringTable).size, p.stringTable.length);
  assert.equal(p.sample.length, 3);
  assert.deepEqual(p.sample[0]?.value, [40, 40 * periodNanos(19)]);
  assert.equal(p.mapping.length, 1);
});

test('encode then decode round-trips, gzipped or raw', () => {
  const p = sampleProfile();
  assert.deepEqual(decodeProfile(encodeProfileGz(p)), p);
  assert.deepEqual(decodeProfile(encodeProfile(p)), p);
});

test('decode refuses garbage, truncation and broken references with a DecodeError', () => {
  const good = encodeProfile(sampleProfile());
  assert.throws(() => decodeProfile(Buffer.from([0xff, 0xff, 0xff, 0xff])), DecodeError);
  assert.throws(() => decodeProfile(good.subarray(0, good.length - 7)), DecodeError);
  assert.throws(() => decodeProfile(Buffer.from([0x1f, 0x8b, 1, 2, 3])), /gzip/);
  const broken = sampleProfile();
  broken.sample[0]!.locationId.push(999);
  assert.throws(() => decodeProfile(encodeProfile(broken)), /unknown location 999/);
  const badStrings = sampleProfile();
  badStrings.stringTable[0] = 'x';
  assert.throws(() => decodeProfile(encodeProfile(badStrings)), /string_table\[0\]/);
  assert.throws(() => decodeProfile(gzipSync(Buffer.from('not a profile at all, just text'))), DecodeError);
});

test('folded lines put the process first and the leaf last', () => {
  const folded = formatFolded(sampleProfile());
  assert.equal(folded, 'app;main;spin_forever 40\napp;main;app+0x3abc 5\nother;main;entry_SYSCALL_64 5\n');
});

test('top counts flat at the leaf and cum once per sample', () => {
  const { rows, total } = topFunctions(sampleProfile());
  assert.equal(total, 50);
  assert.deepEqual(rows[0], { name: 'spin_forever', flat: 40, cum: 40 });
  assert.deepEqual(rows.find((r) => r.name === 'main'), { name: 'main', flat: 0, cum: 50 });
  assert.match(formatTop(sampleProfile(), 2), /Showing top 2 of 4 functions, 50 samples total[\s\S]*80\.00%.*spin_forever/);
});

test('go tool pprof reads the encoded profile and names the functions', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hotloop-pprof-'));
  const file = path.join(dir, 'cpu.pb.gz');
  writeFileSync(file, encodeProfileGz(sampleProfile()));
  const out = goPprofTop(file);
  assert.match(out, /spin_forever/);
  assert.match(out, /entry_SYSCALL_64/);
  assert.match(out, /Type: cpu/);
});
