// The few error classes of the edges. Each says what happened and what to do;
// one place maps them to gRPC status codes (transport/status.ts) and one to
// exit codes of the CLI (cli/exit.ts).

/** A configuration problem, named by file, section and key. Exit status 2. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly section: string | null,
    readonly key: string | null,
    readonly problem: string,
  ) {
    super(`${file}: ${section === null ? '' : `[${section}] `}${key === null ? '' : `${key}: `}${problem}`);
    this.name = 'ConfigError';
  }
}

/** A command line that cannot be carried out as written. Exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The cluster (or a node) refused the request, or the command failed. Exit status 1. */
export class RefusedError extends Error {
  override name = 'RefusedError';
}

/** No node could be reached in time. Exit status 3. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

/** A peer message or admin call that fails authentication, has another cluster id, or is malformed. */
export class AuthError extends Error {
  constructor(
    message: string,
    readonly reason: 'secret' | 'cluster' | 'replay' | 'malformed' | 'unknown-peer' | 'version',
  ) {
    super(message);
    this.name = 'AuthError';
  }
}
