/**
 * Errors that the CLI turns into one clear message and exit code 2 (bad input), never a stack trace.
 *
 * @module
 */

/** Bad input from the user: a flag, a file, a name. The message says what and where. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
