/**
 * Errors thrown by llm-kernels.
 *
 * - Wrong type of argument: `TypeError` (code `ERR_INVALID_ARG_TYPE`).
 * - Bad value or shape: `RangeError` (code `ERR_OUT_OF_RANGE`).
 * - Everything else: {@link LlmKernelsError} with a stable {@link ErrorCode}.
 *
 * Messages have the form `<op>: expected <what> for <param>, got <actual>`. The native layer
 * (native/common/status.h) produces the same classes and codes.
 */

/** The stable codes of {@link LlmKernelsError}. Codes are API: they never change meaning. */
export type ErrorCode =
  | 'ERR_DISPOSED'
  | 'ERR_OOM'
  | 'ERR_DEVICE'
  | 'ERR_UNSUPPORTED'
  | 'ERR_MODEL_FORMAT'
  | 'ERR_KV_FULL'
  | 'ERR_TIMEOUT'
  | 'ERR_PEER_LOST'
  | 'ERR_COLLECTIVE_MISMATCH'
  | 'ERR_INTERNAL'
  | 'ERR_NATIVE_LOAD';

/**
 * An error of llm-kernels that is not an argument error. Switch on `code`, not on the message.
 * @example
 * try { device('cuda') } catch (e) { if (e instanceof LlmKernelsError && e.code === 'ERR_DEVICE') useCpu() }
 */
export class LlmKernelsError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;
  /**
   * @param code - one of {@link ErrorCode}
   * @param message - what happened and, where there is one, the fix
   */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LlmKernelsError';
    this.code = code;
  }
}

/** A TypeError carrying Node's code for argument type errors. */
export function typeError(message: string): TypeError {
  const e = new TypeError(message) as TypeError & { code: string };
  e.code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

/** A RangeError carrying Node's code for out-of-range arguments. */
export function rangeError(message: string): RangeError {
  const e = new RangeError(message) as RangeError & { code: string };
  e.code = 'ERR_OUT_OF_RANGE';
  return e;
}
