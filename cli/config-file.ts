// `--config FILE` for the daemons: a YAML file (JSON is YAML too) of settings
// named like the command's long flags, e.g. `spool-max-bytes: 256MiB`. Flags
// given on the command line override the file. A setting the command does not
// have is an error, so a typo is never silently ignored.
import { readFileSync } from 'node:fs';
import type { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';

export type ConfigValues = Record<string, unknown>;

export function readConfigFile(file: string): ConfigValues {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config file ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new Error(`config file ${file} is neither YAML nor JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`config file ${file} must be a mapping of setting: value`);
  return parsed as ConfigValues;
}

/** Sets each of the command's options from the file, except those given on the command line. */
export function applyConfig(command: Command, values: ConfigValues, file: string): void {
  const settable = command.options.filter((o) => o.long !== undefined && o.long !== '--config');
  for (const [key, value] of Object.entries(values)) {
    const option = settable.find((o) => o.long === `--${key}`);
    if (!option) {
      const known = settable.map((o) => o.long?.slice(2)).join(', ');
      throw new Error(`config file ${file}: unknown setting "${key}"; \`hotloop ${command.name()}\` takes ${known}`);
    }
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    if (source === 'cli' || source === 'env') continue;
    command.setOptionValueWithSource(name, settingValue(command, option, value, `config file ${file}: ${key}`), 'config');
  }
}

/** The value the flag would have had, validated by the flag's own parser. */
function settingValue(command: Command, option: Option, value: unknown, where: string): unknown {
  if (!option.required && !option.optional) {
    if (typeof value !== 'boolean') throw new Error(`${where} must be true or false`);
    return option.negate ? !value : value;
  }
  if (typeof value !== 'string' && typeof value !== 'number') throw new Error(`${where} must be a single value, not ${JSON.stringify(value)}`);
  const text = String(value);
  if (option.argChoices && !option.argChoices.includes(text)) throw new Error(`${where} must be one of ${option.argChoices.join(', ')}, not ${text}`);
  if (!option.parseArg) return text;
  try {
    return option.parseArg(text, command.getOptionValue(option.attributeName()));
  } catch (err) {
    throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Adds --config FILE to a daemon command; the file is applied just before the command runs. */
export function addConfigOption(command: Command): Command {
  return command
    .option('--config <file>', 'YAML or JSON file of settings named like these flags; flags given here override it')
    .hook('preAction', (cmd) => {
      const file: unknown = cmd.getOptionValue('config');
      if (typeof file === 'string') applyConfig(cmd, readConfigFile(file), file);
    });
}
