import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KernelSymbols } from '../agent/kallsyms.js';
import { parseProcMaps } from '../agent/proc-maps.js';
import { Symbolizer } from '../agent/symbolizer.js';
import { buildTarget, RunningTarget, type BuiltTarget } from './helpers/symbolizer-target.js';

function readelfBuildId(file: string): string {
  const out = execFileSync('readelf', ['-n', file], { encoding: 'utf8' });
  const m = /Build ID: ([0-9a-f]+)/.exec(out);
  assert.ok(m, `readelf reports no build id for ${file}`);
  return m[1];
}

let built: BuiltTarget;
before(() => {
  built = buildTarget();
});
after(() => {
  fs.rmSync(built.dir, { recursive: true, force: true });
});

for (const pie of [true, false]) {
  describe(`user frames of a ${pie ? 'PIE' : 'non-PIE'} executable`, () => {
    let target: RunningTarget;
    let executable: string;
    before(async () => {
      executable = pie ? built.pieExecutable : built.noPieExecutable;
      target = await RunningTarget.start(executable, built.dlopenedLibrary);
    });
    after(async () => {
      await target.kill();
    });

    it('names functions of the executable, with its mapping and build id', () => {
      const symbolizer = new Symbolizer();
      const leaf = symbolizer.userFrame(target.pid, target.address('hotloop_leaf'), true);
      assert.equal(leaf.functionName, 'hotloop_leaf');
      assert.equal(leaf.address, target.address('hotloop_leaf'));
      assert.equal(leaf.mapping?.file, executable);
      assert.equal(leaf.mapping?.buildId, readelfBuildId(executable));
      assert.equal(leaf.mapping?.hasFunctions, true);
      assert.equal(symbolizer.userFrame(target.pid, target.address('hotloop_caller') + 3n, true).functionName, 'hotloop_caller');
    });

    it('looks return addresses up one byte earlier', () => {
      const symbolizer = new Symbolizer();
      const caller = target.address('hotloop_caller');
      assert.equal(symbolizer.userFrame(target.pid, caller + 5n, false).functionName, 'hotloop_caller');
      // A return address equal to a function's first byte belongs to whatever precedes it.
      const atStart = symbolizer.userFrame(target.pid, caller, false);
      assert.notEqual(atStart.functionName, 'hotloop_caller');
      assert.equal(atStart.address, caller);
      assert.equal(symbolizer.userFrame(target.pid, caller, true).functionName, 'hotloop_caller');
    });

    it('names a static function of a linked shared library from its .symtab', () => {
      const symbolizer = new Symbolizer();
      const frame = symbolizer.userFrame(target.pid, target.address('linked_inner_work') + 2n, true);
      assert.equal(frame.functionName, 'linked_inner_work');
      assert.equal(frame.mapping?.file, built.linkedLibrary);
      assert.equal(frame.mapping?.buildId, readelfBuildId(built.linkedLibrary));
    });
  });
}

describe('a process that changes and exits', () => {
  it('re-reads the maps for a library dlopened after rememberProcess, and names frames after exit', async () => {
    const target = await RunningTarget.start(built.pieExecutable, built.dlopenedLibrary);
    const symbolizer = new Symbolizer();
    try {
      symbolizer.rememberProcess(target.pid);
      await target.dlopen();
      const dl = symbolizer.userFrame(target.pid, target.address('dl_exported_work') + 1n, true);
      assert.equal(dl.functionName, 'dl_exported_work'); // stripped: named from .dynsym
      assert.equal(dl.mapping?.file, built.dlopenedLibrary);
      symbolizer.rememberProcess(target.pid);
    } finally {
      await target.kill();
    }
    assert.equal(fs.existsSync(`/proc/${target.pid}`), false);

    assert.equal(symbolizer.userFrame(target.pid, target.address('hotloop_leaf') + 4n, false).functionName, 'hotloop_leaf');
    assert.equal(symbolizer.userFrame(target.pid, target.address('dl_exported_work'), true).functionName, 'dl_exported_work');
    const linked = symbolizer.userFrame(target.pid, target.address('linked_inner_work'), true);
    assert.equal(linked.functionName, 'linked_inner_work');
    assert.equal(linked.mapping?.buildId, readelfBuildId(built.linkedLibrary));
    assert.equal(symbolizer.stats().cachedProcesses, 1);

    symbolizer.forgetProcessesExcept(new Set());
    assert.equal(symbolizer.stats().cachedProcesses, 0);
    const forgotten = symbolizer.userFrame(target.pid, target.address('hotloop_leaf'), true);
    assert.deepEqual(forgotten, { address: target.address('hotloop_leaf'), mapping: null, functionName: null });
  });

  it('names code of an executable that was replaced on disk while running', async () => {
    const executable = path.join(built.dir, 'target-replaced');
    fs.copyFileSync(built.pieExecutable, executable);
    fs.chmodSync(executable, 0o755);
    const target = await RunningTarget.start(executable, built.dlopenedLibrary);
    try {
      fs.unlinkSync(executable);
      fs.writeFileSync(executable, 'not the binary that is running\n');
      const frame = new Symbolizer().userFrame(target.pid, target.address('hotloop_leaf'), true);
      assert.equal(frame.functionName, 'hotloop_leaf');
      assert.equal(frame.mapping?.file, executable);
      assert.equal(frame.mapping?.buildId, readelfBuildId(built.pieExecutable));
    } finally {
      await target.kill();
    }
  });

  it('names the vDSO from the copy in process memory', async () => {
    const target = await RunningTarget.start(built.pieExecutable, built.dlopenedLibrary);
    try {
      const vdso = parseProcMaps(fs.readFileSync(`/proc/${target.pid}/maps`, 'utf8')).find((e) => e.path === '[vdso]');
      assert.ok(vdso, 'target has a vDSO');
      // Cross-check against nm on a dump of the same bytes; the vDSO is linked at 0.
      const dump = path.join(built.dir, 'vdso.so');
      const fd = fs.openSync(`/proc/${target.pid}/mem`, 'r');
      const bytes = Buffer.alloc(Number(vdso.end - vdso.start));
      fs.readSync(fd, bytes, 0, bytes.length, vdso.start);
      fs.closeSync(fd);
      fs.writeFileSync(dump, bytes);
      const nm = execFileSync('nm', ['-D', '--defined-only', dump], { encoding: 'utf8' });
      const line = nm.split('\n').find((l) => / [TW] (__vdso_)?clock_gettime(@|$)/.test(l));
      assert.ok(line, 'vDSO exports clock_gettime');
      const value = BigInt(`0x${line.split(' ')[0]}`);
      const frame = new Symbolizer().userFrame(target.pid, vdso.start + value + 8n, true);
      assert.match(frame.functionName ?? '', /^(__vdso_)?clock_gettime$/);
      assert.equal(frame.mapping?.file, '[vdso]');
    } finally {
      await target.kill();
    }
  });
});

describe('JIT frames from the perf map', () => {
  it('names addresses listed in /tmp/perf-PID.map and picks up lines appended later', async () => {
    const sleeper = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => sleeper.once('exit', resolve));
    const pid = sleeper.pid;
    assert.ok(pid);
    const perfMap = `/tmp/perf-${pid}.map`;
    try {
      await new Promise((resolve) => sleeper.once('spawn', resolve));
      const jitBase = 0x10000000n;
      const maps = parseProcMaps(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
      assert.ok(maps.every((e) => e.end <= jitBase || e.start >= jitBase + 0x1000n), 'fake JIT range is unmapped');

      fs.writeFileSync(perfMap, `${jitBase.toString(16)} 40 LazyCompile:*hotLoop /app/x.js:1\n`);
      const symbolizer = new Symbolizer();
      const frame = symbolizer.userFrame(pid, jitBase + 0x10n, false);
      assert.deepEqual(frame, { address: jitBase + 0x10n, mapping: null, functionName: 'LazyCompile:*hotLoop /app/x.js:1' });
      assert.equal(symbolizer.userFrame(pid, jitBase + 0x40n, true).functionName, null);

      // Appended while running, including an unfinished line that must wait for its newline.
      fs.appendFileSync(perfMap, `0x${(jitBase + 0x100n).toString(16)} 0x20 Builtin:ArgumentsAdaptor\n10000200 10 Partial`);
      assert.equal(symbolizer.userFrame(pid, jitBase + 0x105n, true).functionName, 'Builtin:ArgumentsAdaptor');
      assert.equal(symbolizer.userFrame(pid, jitBase + 0x205n, true).functionName, null);
      fs.appendFileSync(perfMap, 'Line\n');
      assert.equal(symbolizer.userFrame(pid, jitBase + 0x205n, true).functionName, 'PartialLine');

      // Code space reused: the newer entry wins once the map is re-read.
      fs.appendFileSync(perfMap, `${jitBase.toString(16)} 80 LazyCompile:*reused /app/y.js:9\n`);
      symbolizer.rememberProcess(pid);
      assert.equal(symbolizer.userFrame(pid, jitBase + 0x10n, true).functionName, 'LazyCompile:*reused /app/y.js:9');
    } finally {
      sleeper.kill('SIGKILL');
      await exited;
      fs.rmSync(perfMap, { force: true });
    }
  });
});

describe('kernel frames', () => {
  it('names a kernel text address from /proc/kallsyms with the kernel build id', () => {
    const symbols = fs
      .readFileSync('/proc/kallsyms', 'utf8')
      .split('\n')
      .map((l) => l.split(/\s+/))
      .filter((f) => f.length === 3 && /^[tT]$/.test(f[1])) // core kernel text, no [module]
      .map((f) => ({ address: BigInt(`0x${f[0]}`), name: f[2] }))
      .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    assert.ok(symbols.length > 0 && symbols[0].address !== 0n, 'kallsyms readable with addresses (needs root)');
    const lookupable = symbols.filter((s, i) => i + 1 < symbols.length && symbols[i + 1].address > s.address + 5n);
    const picked = lookupable.find((s) => s.name === 'do_syscall_64') ?? lookupable[0];
    assert.ok(picked, 'found a kernel function to look up');

    const frame = new Symbolizer().kernelFrame(picked.address + 5n);
    assert.equal(frame.functionName, picked.name);
    assert.equal(frame.address, picked.address + 5n);
    assert.equal(frame.mapping?.file, '[kernel.kallsyms]');
    const perfOut = execFileSync('perf', ['buildid-list', '-k'], { encoding: 'utf8' }).trim();
    assert.equal(frame.mapping?.buildId, perfOut);
  });

  it('names module symbols with [module], and re-reads kallsyms when an unknown address shows up', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hotloop-kallsyms-'));
    try {
      const procRoot = path.join(root, 'proc');
      const sysRoot = path.join(root, 'sys');
      fs.mkdirSync(procRoot);
      fs.mkdirSync(path.join(sysRoot, 'kernel'), { recursive: true });
      fs.mkdirSync(path.join(sysRoot, 'module', 'ext4', 'notes'), { recursive: true });
      const buildIdNote = (id: string): Buffer => {
        const desc = Buffer.from(id, 'hex');
        const head = Buffer.alloc(12);
        head.writeUInt32LE(4, 0);
        head.writeUInt32LE(desc.length, 4);
        head.writeUInt32LE(3, 8);
        return Buffer.concat([head, Buffer.from('GNU\0'), desc]);
      };
      fs.writeFileSync(path.join(sysRoot, 'kernel', 'notes'), buildIdNote('aabbccdd'));
      fs.writeFileSync(path.join(sysRoot, 'module', 'ext4', 'notes', '.note.gnu.build-id'), buildIdNote('11223344'));
      const core = [
        'ffffffff81000000 T _stext',
        'ffffffff81000100 T do_one',
        'ffffffff81000100 t do_one_alias',
        'ffffffff81000180 D some_data',
        'ffffffff81000200 t do_two',
        'ffffffff81001000 T _etext',
      ].join('\n');
      const ext4 = 'ffffffffc0001000 t ext4_fill_super\t[ext4]\n';
      fs.writeFileSync(path.join(procRoot, 'kallsyms'), `${core}\n${ext4}`);
      fs.writeFileSync(path.join(procRoot, 'modules'), 'ext4 8192 1 - Live 0xffffffffc0000000\n');

      const kernel = new KernelSymbols({ procRoot, sysRoot, minRefreshIntervalMs: 0 });
      assert.deepEqual(kernel.resolve(0xffffffff81000150n), {
        functionName: 'do_one',
        mapping: { start: 0xffffffff81000000n, limit: 0xffffffff81001000n, fileOffset: 0n, file: '[kernel.kallsyms]', buildId: 'aabbccdd', hasFunctions: true },
      });
      assert.equal(kernel.resolve(0xffffffff81000fffn).functionName, 'do_two'); // bounded by _etext
      const module = kernel.resolve(0xffffffffc0001010n);
      assert.equal(module.functionName, 'ext4_fill_super [ext4]');
      assert.deepEqual(module.mapping, {
        start: 0xffffffffc0000000n,
        limit: 0xffffffffc0002000n,
        fileOffset: 0n,
        file: '[ext4]',
        buildId: '11223344',
        hasFunctions: true,
      });
      assert.equal(kernel.resolve(0xffffffffc0002010n).functionName, null); // past the end of ext4

      // A module loads: its addresses are unknown until kallsyms is read again.
      fs.appendFileSync(path.join(procRoot, 'kallsyms'), 'ffffffffc0003000 t nft_do_chain\t[nf_tables]\n');
      fs.appendFileSync(path.join(procRoot, 'modules'), 'nf_tables 4096 0 - Live 0xffffffffc0003000\n');
      const loaded = kernel.resolve(0xffffffffc0003004n);
      assert.equal(loaded.functionName, 'nft_do_chain [nf_tables]');
      assert.equal(loaded.mapping?.file, '[nf_tables]');
      assert.equal(loaded.mapping?.buildId, ''); // no notes for it under sysRoot
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('garbage input', () => {
  it('returns unnamed frames, without throwing, for pids that do not exist and kernel addresses nowhere', () => {
    const symbolizer = new Symbolizer();
    const pid = 2 ** 31 - 2; // above any pid_max
    symbolizer.rememberProcess(pid);
    assert.deepEqual(symbolizer.userFrame(pid, 0x401000n, false), { address: 0x401000n, mapping: null, functionName: null });
    assert.deepEqual(symbolizer.userFrame(pid, 0n, false), { address: 0n, mapping: null, functionName: null });
    assert.deepEqual(symbolizer.kernelFrame(0x1000n), { address: 0x1000n, mapping: null, functionName: null });
    assert.equal(symbolizer.stats().cachedProcesses, 0);
  });

  it('keeps the mapping but no name for a non-ELF or truncated file mapped executable', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hotloop-procroot-'));
    try {
      const notElf = path.join(root, 'not-elf.bin');
      fs.writeFileSync(notElf, 'just text, mapped as if it were code\n'.repeat(200));
      const truncated = path.join(root, 'truncated.so');
      fs.writeFileSync(truncated, fs.readFileSync(built.linkedLibrary).subarray(0, 300));
      const pidDir = path.join(root, 'proc', '4242');
      fs.mkdirSync(pidDir, { recursive: true });
      fs.symlinkSync('/', path.join(pidDir, 'root'));
      const line = (range: string, file: string): string => `${range} r-xp 00000000 fe:00 ${fs.statSync(file).ino}    ${file}`;
      fs.writeFileSync(path.join(pidDir, 'maps'), `${line('10000-12000', notElf)}\n${line('20000-21000', truncated)}\n`);

      const symbolizer = new Symbolizer({ procRoot: path.join(root, 'proc') });
      for (let i = 0; i < 2; i++) {
        const frame = symbolizer.userFrame(4242, 0x10010n, true);
        assert.equal(frame.functionName, null);
        assert.deepEqual(frame.mapping, { start: 0x10000n, limit: 0x12000n, fileOffset: 0n, file: notElf, buildId: '', hasFunctions: false });
        assert.equal(symbolizer.userFrame(4242, 0x20010n, false).mapping?.file, truncated);
        assert.equal(symbolizer.userFrame(4242, 0x20010n, false).functionName, null);
      }
      // Both failures are remembered (not re-parsed per frame) and still bounded by the cache.
      assert.equal(symbolizer.stats().cachedFiles, 2);
      assert.equal(symbolizer.userFrame(4242, 0x30000n, true).mapping, null);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('bounds the number of cached binaries', async () => {
    const target = await RunningTarget.start(built.pieExecutable, built.dlopenedLibrary);
    try {
      const symbolizer = new Symbolizer({ maxCachedFiles: 2 });
      symbolizer.rememberProcess(target.pid);
      assert.equal(symbolizer.stats().cachedFiles, 2); // the target maps more executable files than that
      // Evicted from the cache but still held by the remembered process.
      assert.equal(symbolizer.userFrame(target.pid, target.address('hotloop_leaf'), true).functionName, 'hotloop_leaf');
    } finally {
      await target.kill();
    }
  });
});
