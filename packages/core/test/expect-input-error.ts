import { expect } from 'vitest';
import { InputError } from '../src/index.js';

/**
 * Runs `action`, asserts it threw the InputError a person would see (exit code 2, stable code,
 * a message the CLI can print as one line) and returns it for further checks.
 */
export function expectInputError(action: () => unknown, code: string): InputError {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(InputError);
  const error = thrown as InputError;
  expect(error.code).toBe(code);
  expect(error.exitCode).toBe(2);
  expect(error.message).not.toMatch(/[\r\n]/);
  return error;
}
