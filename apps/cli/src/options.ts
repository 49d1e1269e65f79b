import { InvalidArgumentError } from 'commander';

/** A commander argument parser for positive integers: a bad value is a usage error (exit 2). */
export function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}
