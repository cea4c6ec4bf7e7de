// The agent's on-disk spool on a real filesystem: windows and the agent's
// identity survive reopening, the size bound drops the oldest, one agent at a
// time owns a spool, and a SIGKILLed owner leaves no stale lock.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { codecs, type WindowUpload } from '../proto/wire.js';
import { WindowSpool, type SpoolDrop } from '../agent/window-spool.js';
import { repoRoot, tempDir, waitFor } from './helpers/processes.js';

function windowOf(spool: WindowSpool, host: string, pprofBytes = 100): WindowUpload {
  const seq = spool.allocateSeq();
  return {
    host,
    agentId: spool.agentId,
    seq,
    startUnixNanos: 1_700_000_000_000_000_000n + BigInt(seq) * 10_000_000_000n,
    endUnixNanos: 1_700_000_010_000_000_000n + BigInt(seq) * 10_000_000_000n,
    pprofGz: Buffer.alloc(pprofBytes, seq % 256),
    processes: [{ pid: 42, comm: 'api', exe: '/usr/bin/api', cmdline: 'api --serve', cgroup: '/', containerId: '', hot: true, cpuCores: 1 }],
  };
}

function windowFiles(dir: string): string[] {
  return readdirSync(path.join(dir, 'windows')).sort();
}

describe('WindowSpool', () => {
  it('keeps unacked windows, the agent id and the sequence across a reopen', () => {
    const dir = tempDir('spool');
    const first = new WindowSpool({ dir, host: 'web-1' });
    const written = [1, 2, 3].map(() => windowOf(first, 'web-1'));
    for (const w of written) first.add(w);
    first.remove(2);
    const agentId = first.agentId;
    first.close();

    const second = new WindowSpool({ dir, host: 'web-1' });
    try {
      assert.equal(second.agentId, agentId);
      assert.match(agentId, /^web-1\//);
      assert.deepEqual(second.pendingSeqs(), [1, 3]);
      const reread = second.read(3);
      assert.ok(reread);
      assert.deepEqual(codecs.windowUpload.encode(reread), codecs.windowUpload.encode(written[2]!), 'the same window, field for field');
      assert.equal(second.allocateSeq(), 4, 'the sequence continues after the last window handed out');
      assert.equal(second.windows, 2);
    } finally {
      second.close();
    }
  });

  it('continues the sequence even when every window was acked and deleted', () => {
    const dir = tempDir('spool');
    const first = new WindowSpool({ dir, host: 'web-1' });
    for (let i = 0; i < 5; i++) {
      const w = windowOf(first, 'web-1');
      first.add(w);
      first.remove(w.seq);
    }
    first.close();
    assert.deepEqual(windowFiles(dir), []);
    const second = new WindowSpool({ dir, host: 'web-1' });
    try {
      assert.equal(second.allocateSeq(), 6);
    } finally {
      second.close();
    }
  });

  it('drops the oldest windows beyond its size bound, and says so', () => {
    const dir = tempDir('spool');
    const drops: SpoolDrop[] = [];
    const spool = new WindowSpool({ dir, host: 'web-1', maxBytes: 3_500, onDrop: (d) => drops.push(d) });
    try {
      for (let i = 0; i < 5; i++) spool.add(windowOf(spool, 'web-1', 1_000));
      assert.deepEqual(spool.pendingSeqs(), [3, 4, 5]);
      assert.deepEqual(
        drops.map((d) => [d.seq, d.reason, d.dropped]),
        [
          [1, 'spool-full', 1],
          [2, 'spool-full', 2],
        ],
      );
      assert.equal(spool.droppedBy['spool-full'], 2);
      assert.ok(spool.bytes <= 3_500);
      assert.deepEqual(windowFiles(dir), ['000000000003.pb', '000000000004.pb', '000000000005.pb']);
    } finally {
      spool.close();
    }
  });

  it('refuses a second owner while the first holds it', () => {
    const dir = tempDir('spool');
    const owner = new WindowSpool({ dir, host: 'web-1' });
    assert.throws(() => new WindowSpool({ dir, host: 'web-1' }), new RegExp(`in use by another hotloop agent \\(pid ${process.pid}\\)`));
    owner.close();
    new WindowSpool({ dir, host: 'web-1' }).close();
  });

  it('is free again once its owner is SIGKILLed', async () => {
    const dir = tempDir('spool');
    const spoolModule = path.join(repoRoot, 'dist/agent/window-spool.js');
    const holder = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const { WindowSpool } = await import(${JSON.stringify(spoolModule)}); new WindowSpool({ dir: ${JSON.stringify(dir)}, host: 'web-1' }); console.log('held'); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await once(holder.stdout, 'data');
      assert.throws(() => new WindowSpool({ dir, host: 'web-1' }), /in use by another hotloop agent/);
      holder.kill('SIGKILL');
      await once(holder, 'exit');
      const spool = await waitFor('the lock to be free', () => {
        try {
          return new WindowSpool({ dir, host: 'web-1' });
        } catch {
          return undefined;
        }
      }, 10_000);
      spool.close();
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('drops what a renamed host left, under a new agent id', () => {
    const dir = tempDir('spool');
    const old = new WindowSpool({ dir, host: 'web-1' });
    old.add(windowOf(old, 'web-1'));
    const oldId = old.agentId;
    old.close();
    const drops: SpoolDrop[] = [];
    const renamed = new WindowSpool({ dir, host: 'web-one', onDrop: (d) => drops.push(d) });
    try {
      assert.notEqual(renamed.agentId, oldId);
      assert.match(renamed.agentId, /^web-one\//);
      assert.deepEqual(renamed.pendingSeqs(), []);
      assert.deepEqual(drops.map((d) => d.reason), ['host-renamed']);
      assert.equal(renamed.allocateSeq(), 1);
    } finally {
      renamed.close();
    }
  });

  it('removes unfinished writes on open and drops a window file it cannot read', () => {
    const dir = tempDir('spool');
    const spool = new WindowSpool({ dir, host: 'web-1' });
    spool.add(windowOf(spool, 'web-1'));
    spool.close();
    writeFileSync(path.join(dir, 'windows', '000000000002.pb.tmp'), 'half a window');
    writeFileSync(path.join(dir, 'windows', '000000000003.pb'), Buffer.from([0xff, 0xff, 0xff]));
    const drops: SpoolDrop[] = [];
    const reopened = new WindowSpool({ dir, host: 'web-1', onDrop: (d) => drops.push(d) });
    try {
      assert.equal(existsSync(path.join(dir, 'windows', '000000000002.pb.tmp')), false);
      assert.deepEqual(reopened.pendingSeqs(), [1, 3]);
      assert.equal(reopened.read(3), undefined);
      assert.deepEqual(drops.map((d) => [d.seq, d.reason]), [[3, 'unreadable']]);
      assert.deepEqual(reopened.pendingSeqs(), [1]);
      assert.equal(reopened.allocateSeq(), 4, 'a seq found on disk is never handed out again');
    } finally {
      reopened.close();
    }
  });

  it('refuses to guess an identity from a damaged state file', () => {
    const dir = tempDir('spool');
    new WindowSpool({ dir, host: 'web-1' }).close();
    writeFileSync(path.join(dir, 'state.json'), '{"host": "web-1"');
    assert.throws(() => new WindowSpool({ dir, host: 'web-1' }), /state\.json is not a hotloop spool state/);
    // The failed open released the lock.
    writeFileSync(path.join(dir, 'state.json'), '{"host": "web-1", "agentId": "web-1/x", "nextSeq": 7}');
    const spool = new WindowSpool({ dir, host: 'web-1' });
    try {
      assert.equal(spool.agentId, 'web-1/x');
      assert.equal(spool.allocateSeq(), 7);
    } finally {
      spool.close();
    }
  });
});
