/** `cookies`, `auth`, `profile`, `storage`, `meta`, or `workflow:<name>`. */
export type SlateName = 'cookies' | 'auth' | 'profile' | 'storage' | 'meta' | `workflow:${string}`;

/**
 * How a slate is stored and written when jobs of one session write it at once. The table of
 * ARCHITECTURE.md, as code:
 *
 * | slate | stored as | on concurrent writes |
 * |---|---|---|
 * | `cookies` | `fields`: a hash, one sealed field per cookie | blind per-field write: the latest wins |
 * | `auth` | `sealed`: one envelope | compare-and-set; the caller keeps the later `changedAt` |
 * | `profile` | `sealed` | `create`: the first writer's stands, later ones get it back |
 * | `storage` | `fields`: one sealed field per origin (a browser's localStorage) | blind per origin: the latest wins |
 * | `meta` | `counters`: a hash of counts and times | counts add up, the latest use wins |
 * | `workflow:<name>` | `sealed` | compare-and-set; a stale job retries |
 */
export type SlateShape = 'fields' | 'sealed' | 'counters';
export type WriteRule = 'fields' | 'cas' | 'create' | 'counters';

export interface SlateRule {
  shape: SlateShape;
  write: WriteRule;
  /**
   * Whether a worker keeps the opened value to reuse while it is unchanged: only values nothing
   * but crawlfleet reads (a workflow's state goes to user code, fresh each time).
   */
  reused: boolean;
}

export const SLATE_RULES = {
  cookies: { shape: 'fields', write: 'fields', reused: true },
  auth: { shape: 'sealed', write: 'cas', reused: true },
  profile: { shape: 'sealed', write: 'create', reused: true },
  storage: { shape: 'fields', write: 'fields', reused: true },
  meta: { shape: 'counters', write: 'counters', reused: true },
  workflow: { shape: 'sealed', write: 'cas', reused: false },
} as const satisfies Record<string, SlateRule>;

/** The slates every session may hold, whatever its workflows. */
export const FIXED_SLATES = ['cookies', 'auth', 'profile', 'storage', 'meta'] as const satisfies readonly SlateName[];

export function ruleOf(name: SlateName): SlateRule {
  return name.startsWith('workflow:') ? SLATE_RULES.workflow : SLATE_RULES[name as keyof typeof SLATE_RULES];
}

/** The one-letter shape code the hydrate script reads. */
export function shapeCode(shape: SlateShape): 'f' | 's' | 'c' {
  return shape === 'fields' ? 'f' : shape === 'counters' ? 'c' : 's';
}
