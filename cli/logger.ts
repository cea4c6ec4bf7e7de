// One pino logger per process: JSON lines on stderr, so stdout stays for command output.
import { pino, type Logger } from 'pino';

export function createLogger(name: string, level = process.env.HOTLOOP_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}
