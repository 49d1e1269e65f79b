import { readFileSync } from 'node:fs';

/** A script of this package's `lua/` directory, as text (read once, when a module loads). */
export function luaSource(name: string): string {
  return readFileSync(new URL(`../lua/${name}`, import.meta.url), 'utf8');
}
