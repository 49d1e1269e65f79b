/** The value at a dotted path (`access`, `data.token`, `tokens.0.value`) of parsed JSON. */
export function valueAt(json: unknown, path: string): unknown {
  let current = json;
  for (const field of path.split('.')) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, field)) return undefined;
    current = (current as Record<string, unknown>)[field];
  }
  return current;
}

/** The body of an answer as JSON, or undefined when it is not JSON. */
export function parseJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
