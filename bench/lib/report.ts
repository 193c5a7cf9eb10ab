import { cpus, totalmem } from 'node:os';
import type { Row } from './types.ts';

export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  node: string;
  platform: string;
  note: string;
}

export function machine(): Machine {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    note: 'local loopback measurement: load generator, peers and subjects share this machine',
  };
}

const fmt = (n: number | undefined, unit = '') => {
  if (n === undefined || !Number.isFinite(n)) return '–';
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2;
  return `${n.toFixed(digits)}${unit ? ` ${unit}` : ''}`;
};

export function markdown(rows: readonly Row[], m: Machine): string {
  const lines = [
    `Machine: ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}; ${m.note}.`,
    '',
    '| scenario | metric | ours | peer | peer value | ratio | target |',
    '|---|---|---:|---|---:|---:|---|',
  ];
  for (const r of rows) {
    const target = r.target ? `${r.target}${r.met === undefined ? '' : r.met ? ' ✓' : ' ✗'}` : '';
    lines.push(
      `| ${r.scenario} | ${r.metric}${r.note ? ` (${r.note})` : ''} | ${fmt(r.ours, r.unit)} | ${r.peer ?? ''} | ${fmt(r.peerValue, r.unit)} | ${r.ratio === undefined ? '' : `${fmt(r.ratio)}x`} | ${target} |`,
    );
  }
  return lines.join('\n');
}
