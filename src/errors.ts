// One error type for every layer. The `code` is stable and is mapped once to an
// HTTP status (api/) and a CLI exit code (cli/); messages say what was wrong
// and what to do about it.

export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'FAILED_PRECONDITION'
  | 'FORBIDDEN'
  | 'UNAUTHENTICATED'
  | 'POLICY_VIOLATION'
  | 'DATA_CORRUPTION'
  | 'UNAVAILABLE'
  | 'INTERNAL';

export class StrataError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'StrataError';
  }
}

export class InvalidArgumentError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
  }
}

export class NotFoundError extends StrataError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}

export class RepoNotFoundError extends NotFoundError {
  constructor(readonly repo: string) {
    super(`repo "${repo}" not found (strata repo list shows the repos)`);
  }
}

export class AlreadyExistsError extends StrataError {
  constructor(message: string) {
    super('ALREADY_EXISTS', message);
  }
}

export class ConflictError extends StrataError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

/** Stored bytes do not match their recorded hash. Never returned as data. */
export class CorruptionError extends StrataError {
  constructor(message: string) {
    super('DATA_CORRUPTION', message);
  }
}

const httpStatus: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  FAILED_PRECONDITION: 412,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  POLICY_VIOLATION: 403,
  DATA_CORRUPTION: 500,
  /** A server could not be reached (HTTP client) or is shutting down. */
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export function statusOf(code: ErrorCode): number {
  return httpStatus[code] ?? 500;
}

/** CLI exit codes (DESIGN.md): 2 bad usage or bad input, 1 the operation failed. */
export function exitCodeOf(code: ErrorCode): number {
  switch (code) {
    case 'INVALID_ARGUMENT':
    case 'NOT_FOUND':
    case 'ALREADY_EXISTS':
    case 'FAILED_PRECONDITION':
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN':
    case 'POLICY_VIOLATION':
      return 2;
    default:
      return 1;
  }
}

export function codeFromStatus(status: number): ErrorCode {
  for (const [code, s] of Object.entries(httpStatus)) if (s === status) return code as ErrorCode;
  return status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT';
}
