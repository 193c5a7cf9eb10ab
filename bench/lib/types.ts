export interface BenchContext {
  /** A second or two per contender, one round: keeps the harness from rotting inside `npm test`. */
  readonly smoke: boolean;
  readonly durationSec: number;
  readonly rounds: number;
  log(message: string): void;
}

export interface Row {
  scenario: string;
  metric: string;
  unit: string;
  ours: number;
  /** The peer measured side by side in the same run, when there is one. */
  peer?: string;
  peerValue?: number;
  /** ours / peer (or the ideal, for scaling). */
  ratio?: number;
  target?: string;
  met?: boolean;
  note?: string;
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  run(ctx: BenchContext): Promise<Row[]>;
}
