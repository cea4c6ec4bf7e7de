// `--config FILE`: settings named like the flags, validated by the flags' own
// parsers, overridden by flags given on the command line. Then the real
// daemons on the config files this repository ships (deploy/), so they cannot
// drift from the flags.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Command, Option } from 'commander';
import { parseAllDocuments } from 'yaml';
import { applyConfig, readConfigFile } from '../cli/config-file.js';
import { parseByteSize, parseDuration } from '../cli/quantity.js';
import { logLines } from './helpers/durability.js';
import { freePort, repoRoot, runHotloop, startHotloop, stopProcess, tempDir, waitFor } from './helpers/processes.js';
import { loopbackServerCert, makeCa } from './helpers/test-pki.js';
import { newToken, writeTokenFile } from './helpers/tokens.js';

function writeConfig(name: string, text: string): string {
  const file = path.join(tempDir('config'), name);
  writeFileSync(file, text);
  return file;
}

/** A command shaped like the daemons': defaults, a parser, choices, a boolean. */
function command(): Command {
  const toInt = (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n)) throw new Error('expected a whole number');
    return n;
  };
  return new Command('agent')
    .exitOverride()
    .option('--collector <addr>', 'collector', '127.0.0.1:7717')
    .option('--window <seconds>', 'window', toInt, 10)
    .addOption(new Option('--backend <name>', 'backend').choices(['bpftrace', 'perf']))
    .option('--json', 'json')
    .action(() => {});
}

/** Parses argv, then applies the config, as the --config hook does. */
function configured(argv: string[], values: Record<string, unknown>): Record<string, unknown> {
  const cmd = command();
  cmd.parse(argv, { from: 'user' });
  applyConfig(cmd, values, 'test.yaml');
  return cmd.opts();
}

describe('config file', () => {
  it('reads YAML and JSON alike', () => {
    const yamlFile = writeConfig('a.yaml', '# comment\ncollector: 10.0.0.1:7717\nwindow: 5\n');
    const jsonFile = writeConfig('a.json', '{"collector": "10.0.0.1:7717", "window": 5}');
    assert.deepEqual(readConfigFile(yamlFile), { collector: '10.0.0.1:7717', window: 5 });
    assert.deepEqual(readConfigFile(jsonFile), readConfigFile(yamlFile));
    assert.deepEqual(readConfigFile(writeConfig('empty.yaml', '# nothing set\n')), {});
    assert.throws(() => readConfigFile(writeConfig('list.yaml', '- a\n- b\n')), /must be a mapping of setting: value/);
    assert.throws(() => readConfigFile(writeConfig('bad.yaml', 'collector: [unclosed\n')), /is neither YAML nor JSON/);
  });

  it('fills what the command line left at its default, through the flag parsers', () => {
    assert.deepEqual(configured([], { collector: '10.0.0.1:7717', window: 5, backend: 'perf', json: true }), {
      collector: '10.0.0.1:7717',
      window: 5,
      backend: 'perf',
      json: true,
    });
  });

  it('lets flags on the command line win', () => {
    assert.deepEqual(configured(['--window', '2', '--collector', 'c:1'], { collector: '10.0.0.1:7717', window: 5 }), { collector: 'c:1', window: 2 });
  });

  it('refuses unknown settings and bad values, naming the file and the key', () => {
    assert.throws(() => configured([], { windwo: 5 }), /test\.yaml: unknown setting "windwo"; `hotloop agent` takes collector, window, backend, json/);
    assert.throws(() => configured([], { window: 'soon' }), /test\.yaml: window: expected a whole number/);
    assert.throws(() => configured([], { backend: 'dtrace' }), /test\.yaml: backend must be one of bpftrace, perf, not dtrace/);
    assert.throws(() => configured([], { json: 'yes' }), /test\.yaml: json must be true or false/);
    assert.throws(() => configured([], { collector: ['a', 'b'] }), /test\.yaml: collector must be a single value/);
  });
});

describe('setting values', () => {
  it('reads sizes in powers of 1024 and durations with a unit, whole numbers only', () => {
    assert.equal(parseByteSize('256MiB'), 256 * 1024 * 1024);
    assert.equal(parseByteSize('4G'), 4 * 1024 ** 3);
    assert.equal(parseByteSize('512k'), 512 * 1024);
    assert.equal(parseByteSize('1000'), 1000);
    for (const bad of ['0', '1.5M', '-1', '10 potatoes', '']) assert.throws(() => parseByteSize(bad), /cannot read size/, bad);
    assert.equal(parseDuration('7d'), 7n * 86_400n * 1_000_000_000n);
    assert.equal(parseDuration('30m'), 1_800n * 1_000_000_000n);
    assert.equal(parseDuration('2w'), 14n * 86_400n * 1_000_000_000n);
    for (const bad of ['0s', '1.5h', '7', 'd', '3y']) assert.throws(() => parseDuration(bad), /cannot read duration/, bad);
  });
});

describe('hotloop daemons with --config', { timeout: 120_000 }, () => {
  it('the collector takes its settings from the file and its flags over them', async () => {
    const data = tempDir('config-data');
    const http = `127.0.0.1:${await freePort()}`;
    const grpc = `127.0.0.1:${await freePort()}`;
    const file = writeConfig('collector.yaml', `grpc: 127.0.0.1:1\nhttp: ${http}\ndata: ${data}\nretention: 36h\n`);
    const collector = startHotloop(['collector', '--config', file, '--grpc', grpc]);
    try {
      const started = await waitFor('the collector to start', () => logLines(collector.logs()).find((l) => l.msg === 'collector started'));
      assert.equal(started.grpc, grpc, 'the flag wins');
      assert.equal(started.http, http, 'from the file');
      assert.equal(started.db, path.join(data, 'hotloop.sqlite'));
      assert.equal(started.retentionSeconds, 36 * 3600);
    } finally {
      assert.equal(await stopProcess(collector.child), 0);
    }
  });

  it('a typo in the file stops the daemon with the reason', async () => {
    const r = await runHotloop(['collector', '--config', writeConfig('typo.yaml', 'retension: 7d\n')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown setting "retension"/);
  });

  describe('the shipped configs', () => {
    const deploy = path.join(repoRoot, 'deploy');
    /** Each config file the repository ships, by daemon: the examples and the Kubernetes ConfigMaps. */
    const shipped = (daemon: 'agent' | 'collector'): { name: string; file: string }[] => {
      const fromConfigMap = (manifest: string): string => {
        const doc = parseAllDocuments(readFileSync(path.join(deploy, 'kubernetes', manifest), 'utf8'))
          .map((d) => d.toJSON() as { kind: string; data?: Record<string, string> })
          .find((d) => d.kind === 'ConfigMap');
        const text = doc?.data?.[`${daemon}.yaml`];
        assert.ok(text, `${manifest} has a ConfigMap with ${daemon}.yaml`);
        return writeConfig(`${daemon}.yaml`, text);
      };
      return [
        { name: `deploy/config/${daemon}.yaml`, file: path.join(deploy, 'config', `${daemon}.yaml`) },
        { name: 'the Kubernetes ConfigMap', file: fromConfigMap(daemon === 'agent' ? 'agent-daemonset.yaml' : 'collector.yaml') },
      ];
    };
    // The files name deployment paths; these flags point them at test files instead.
    const pki = tempDir('config-pki');
    const ca = makeCa(pki, 'ca');
    const serverCert = loopbackServerCert(pki, ca);
    const agentToken = writeTokenFile(pki, 'agent-token', newToken());
    const queryToken = writeTokenFile(pki, 'query-token', newToken());

    for (const { name, file } of shipped('collector')) {
      it(`the collector runs on ${name}`, async () => {
        const collector = startHotloop([
          'collector', '--config', file,
          '--grpc', `127.0.0.1:${await freePort()}`, '--http', `127.0.0.1:${await freePort()}`, '--data', tempDir('config-data'),
          '--tls-cert', serverCert.certFile, '--tls-key', serverCert.keyFile, '--agent-token-file', agentToken, '--query-token-file', queryToken,
        ]);
        try {
          const started = await waitFor('the collector to start', () => logLines(collector.logs()).find((l) => l.msg === 'collector started'));
          assert.equal(started.tls, true);
          assert.equal(started.auth, true);
          assert.equal(started.retentionSeconds, 7 * 86_400);
        } finally {
          assert.equal(await stopProcess(collector.child), 0);
        }
      });
    }

    for (const { name, file } of shipped('agent')) {
      it(`the agent runs on ${name}`, async () => {
        const agent = startHotloop([
          'agent', '--config', file, '--host', `config-${process.pid}`,
          '--collector', `127.0.0.1:${await freePort()}`, '--tls-ca', ca.certFile, '--token-file', agentToken,
          '--spool', tempDir('config-spool'), '--http', `127.0.0.1:${await freePort()}`,
        ]);
        try {
          const started = await waitFor('the agent to start', () => logLines(agent.logs()).find((l) => l.msg === 'agent started'));
          assert.equal(started.frequencyHz, 19);
          assert.equal(started.windowSeconds, 10);
        } finally {
          assert.equal(await stopProcess(agent.child), 0);
        }
      });
    }
  });
});
