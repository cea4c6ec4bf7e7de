// Builds and runs the C test target under test/fixtures/symbolizer: a PIE or
// non-PIE executable linked against one shared library and dlopening a
// second, stripped one.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { repoRoot } from './processes.js';

const FIXTURES = path.join(repoRoot, 'test/fixtures/symbolizer/');
const CFLAGS = ['-g', '-O0', '-fno-omit-frame-pointer'];

export interface BuiltTarget {
  dir: string;
  pieExecutable: string;
  noPieExecutable: string;
  linkedLibrary: string;
  /** Stripped: only .dynsym is left. */
  dlopenedLibrary: string;
}

function gcc(args: string[]): void {
  execFileSync('gcc', [...CFLAGS, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

export function buildTarget(): BuiltTarget {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotloop-symbolizer-'));
  const linkedLibrary = path.join(dir, 'liblinked.so');
  const dlopenedLibrary = path.join(dir, 'libdlopened.so');
  gcc(['-shared', '-fPIC', '-o', linkedLibrary, path.join(FIXTURES, 'linked.c')]);
  gcc(['-shared', '-fPIC', '-o', dlopenedLibrary, path.join(FIXTURES, 'dlopened.c')]);
  execFileSync('strip', ['--strip-all', dlopenedLibrary]);
  const link = (output: string, pie: string): string => {
    gcc([pie, '-o', output, path.join(FIXTURES, 'target.c'), `-L${dir}`, '-llinked', `-Wl,-rpath,${dir}`, '-ldl']);
    return output;
  };
  return {
    dir,
    pieExecutable: link(path.join(dir, 'target-pie'), '-pie'),
    noPieExecutable: link(path.join(dir, 'target-nopie'), '-no-pie'),
    linkedLibrary,
    dlopenedLibrary,
  };
}

/** A running target and the function addresses it printed. */
export class RunningTarget {
  readonly addresses = new Map<string, bigint>();
  private readonly lines: AsyncIterator<string>;
  private readonly reader: Interface;
  private readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcessWithoutNullStreams) {
    this.reader = createInterface({ input: child.stdout });
    this.lines = this.reader[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(executable: string, dlopenPath: string): Promise<RunningTarget> {
    const target = new RunningTarget(spawn(executable, [dlopenPath], { stdio: ['pipe', 'pipe', 'pipe'] }));
    await target.readUntil('ready');
    return target;
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error('target did not start');
    return pid;
  }

  address(name: string): bigint {
    const a = this.addresses.get(name);
    if (a === undefined) throw new Error(`target printed no address for ${name}`);
    return a;
  }

  /** Makes the target dlopen its library; resolves once it printed the address. */
  async dlopen(): Promise<void> {
    this.child.stdin.write('dlopen\n');
    await this.readUntil('loaded');
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
    this.reader.close();
  }

  private async readUntil(marker: string): Promise<void> {
    for (;;) {
      const next = await this.lines.next();
      if (next.done) throw new Error(`target exited before printing ${marker}`);
      if (next.value === marker) return;
      const [name, value] = next.value.split(' ');
      this.addresses.set(name, BigInt(value));
    }
  }
}
