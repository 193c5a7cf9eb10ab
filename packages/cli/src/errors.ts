import { ClusterSessionError } from '@cluster-session/core';

/** Every code of this package (one class each, below). */
type CliErrorCode = 'CS_ERR_CLI_USAGE' | 'CS_ERR_CLI_CONFIG';

class CliError extends ClusterSessionError<CliErrorCode> {
  static override readonly family = 'CS_ERR_CLI_';
}

/** The command line itself is wrong (unknown command or flag, a flag's value): exit 2 with one line. */
export class CliUsageError extends CliError {
  static override readonly code = 'CS_ERR_CLI_USAGE';
}

/** A --config file that cannot be read, does not parse, or is not an object of options: exit 2 with one line. */
export class CliConfigError extends CliError {
  static override readonly code = 'CS_ERR_CLI_CONFIG';
}
