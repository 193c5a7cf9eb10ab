import { ClusterSessionError } from '@cluster-session/core';

/** Every code of this package (one class each, below). */
type CreateErrorCode = 'CS_ERR_CREATE_USAGE' | 'CS_ERR_CREATE_TARGET' | 'CS_ERR_CREATE_TEMPLATE';

class CreateError extends ClusterSessionError<CreateErrorCode> {
  static override readonly family = 'CS_ERR_CREATE_';
}

/** The command line is wrong (unknown flag, no directory, two directories): exit 2 with the usage. */
export class CreateUsageError extends CreateError {
  static override readonly code = 'CS_ERR_CREATE_USAGE';
}

/** The target exists and is not an empty directory: nothing is written, exit 1. */
export class CreateTargetError extends CreateError {
  static override readonly code = 'CS_ERR_CREATE_TARGET';
}

/** The starter's template is missing or broken (a packaging fault, or a checkout without the example). */
export class CreateTemplateError extends CreateError {
  static override readonly code = 'CS_ERR_CREATE_TEMPLATE';
}
