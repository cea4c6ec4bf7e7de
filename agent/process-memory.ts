// Reads bytes out of a live process's address space (/proc/PID/mem; root only).
import * as fs from 'node:fs';

/** Up to `length` bytes at `address`; fewer at the end of a mapping. Throws if the process is gone or the range unmapped. */
export function readProcessMemory(pid: number, address: bigint, length: number, procRoot = '/proc'): Buffer {
  const fd = fs.openSync(`${procRoot}/${pid}/mem`, 'r');
  try {
    const bytes = Buffer.alloc(length);
    const read = fs.readSync(fd, bytes, 0, length, address);
    return bytes.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
}
