// `hotloop fleet` output: per service, how many of the hosts running it busy-looped.
import type { ServiceFleet } from '../proto/wire.js';
import { alignColumns } from './text-table.js';

/** Host names listed per service in the table; --json lists all. */
const HOSTS_SHOWN = 8;

export interface ServiceFleetJson {
  exe: string;
  comm: string;
  hostsBusyLooping: number;
  hostsRunning: number;
  busyLoopingHosts: string[];
}

export function serviceFleetJson(s: ServiceFleet): ServiceFleetJson {
  return { exe: s.exe, comm: s.comm, hostsBusyLooping: s.busyLoopingHosts.length, hostsRunning: s.hostsRunning, busyLoopingHosts: s.busyLoopingHosts };
}

export function formatFleetTable(services: readonly ServiceFleet[], range: string): string {
  if (services.length === 0) return `no service busy-looped on any host ${range}\n`;
  const rows = services.map((s) => {
    const shown = s.busyLoopingHosts.slice(0, HOSTS_SHOWN).join(', ');
    const more = s.busyLoopingHosts.length > HOSTS_SHOWN ? ` and ${s.busyLoopingHosts.length - HOSTS_SHOWN} more` : '';
    return [s.comm, s.exe, `${s.busyLoopingHosts.length} of ${s.hostsRunning}`, shown + more];
  });
  return [`services that busy-looped ${range}`, ...alignColumns([['COMM', 'EXE', 'HOSTS BUSY-LOOPING', 'WHICH'], ...rows])].join('\n') + '\n';
}
