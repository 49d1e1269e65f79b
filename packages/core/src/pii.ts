import { isIP } from 'node:net';

/**
 * Personal data that stored results (when a tenant's `redactPii` is on) and logs (always) must
 * not keep: e-mail addresses, phone numbers, IPv4 and IPv6 addresses. Each pattern only finds
 * candidates; a candidate is replaced when it is one: a valid address that the words before it do
 * not name a version, digits grouped the way phone numbers are written. ISBNs, versions, dates,
 * prices, coordinates and card numbers stay. What is caught and what is spared is measured on
 * `test/fixtures/pii-corpus.json`.
 */
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
/** `logo@2x.png` in a srcset has an address's shape, but no top-level domain is an image type. */
const IMAGE_FILE = /\.(?:png|jpe?g|gif|webp|avif|svg)$/i;

/**
 * Candidates only, each checked with `isIP`: a dotted quad (a port may follow), an IPv4-mapped
 * IPv6 address (`::ffff:203.0.113.7`, as Node reports peers), an IPv6 address.
 */
const IP_CANDIDATE =
  /(?<![\w:.])(?:\d{1,3}(?:\.\d{1,3}){3}(?!\w|\.\d)|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.\d{1,3}){3})?(?![\w:]|\.\d))/g;
/**
 * What makes a valid address right after it a version or a section number instead: `version`,
 * `release`, `v`, `§`, a product token such as `Chrome/`. Sticky: tested at a candidate's offset.
 */
const NAMED_AS_VERSION =
  /(?<=(?:version|\b(?:release|build|firmware|revision|rev|ver|patch|section|chapter|v)\.?|§|(?:^|[\s(;])[A-Za-z][\w.+-]*\/)["'\s:=(]*)/iy;

/**
 * Candidates only: digit groups joined by one separator each (a space, dot, hyphen or slash, or
 * the parentheses of an area code), at least 9 characters, taken whole: never from the middle of
 * a run, never short of its end. Which of them are phone numbers is `isPhoneNumber`'s call. The
 * length test comes after the first digit so that the engine can skip ahead to digits.
 */
const PHONE_CANDIDATE =
  /(?<![\w.+/-]|\d\)?[ \u00a0./()-])[+(]?\d(?=[\d \u00a0()./-]{8})\d*(?:(?:\)?[ \u00a0./-]\(?|\))\d+)*(?![\w-]|\)?[ \u00a0./-]\(?\d|\)\d)/g;
/** A label that makes a grouped number right after it a phone number: `Tel.`, `phone:`, `fax`. Sticky. */
const PHONE_LABEL = /(?<=(?<![A-Za-z])(?:t[eé]l(?:[eé]phone|efon)?|phone|mobile?|fax|call)\.?:?\s*)/iy;
/** A national number's first group: one trunk zero and an area code (`030`, `020`, `0800`, `07700`). */
const TRUNK_AND_AREA = /^0[1-9]\d{0,3}$/;

/**
 * Cheap tests that each pattern's core can occur at all (no lookarounds, no replacement): most
 * pages and headers hold none of them, and every stored page goes through here.
 */
const MAY_HOLD_IP = /\d\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:/;
const MAY_HOLD_PHONE = /\d[\d \u00a0()./-]{6,}\d/;

/** Whether a sticky lookbehind `pattern` holds right before `offset`; reads `text` in place. */
function precededBy(pattern: RegExp, text: string, offset: number): boolean {
  pattern.lastIndex = offset;
  return pattern.test(text);
}

function countDigits(text: string): number {
  let digits = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 48 && code <= 57) digits++;
  }
  return digits;
}

/** How a phone number candidate is written. */
interface Grouping {
  /** Led by `+` or `00`; the country code is then `groups[0]`. */
  readonly international: boolean;
  /** The digit groups, without a leading `00` or a `(0)` trunk marker after the country code. */
  readonly groups: readonly string[];
  /** `separators[i]` stands between `groups[i]` and `groups[i + 1]`: ' ', '-', '.', '/', or '' where only a parenthesis did. */
  readonly separators: readonly string[];
  /** The index of the group in parentheses, or -1. */
  readonly bracketed: number;
}

/** The groups of a `PHONE_CANDIDATE` match, or undefined when its parentheses do not pair up. */
function readGrouping(candidate: string): Grouping | undefined {
  // Digit runs at the odd indices; what leads, separates and trails them at the even ones.
  const parts = candidate.split(/(\d+)/);
  let international = parts[0] === '+';
  const groups: string[] = [];
  const separators: string[] = [];
  let bracketed = -1;
  // In `+44 (0)20`, what stood before the dropped `(0)` separates the country and area codes.
  let beforeTrunk: string | undefined;
  for (let index = 1; index < parts.length; index += 2) {
    const before = parts[index - 1] ?? '';
    let group = parts[index] ?? '';
    const inParentheses = before.endsWith('(');
    if (inParentheses !== (parts[index + 1] ?? '').startsWith(')')) return undefined;
    if (groups.length === 0 && !international && group.startsWith('00')) {
      international = true;
      group = group.slice(2);
      if (group === '') continue;
    } else if (inParentheses && group === '0' && international && groups.length === 1) {
      beforeTrunk = separatorIn(before);
      continue;
    }
    if (groups.length > 0) separators.push(beforeTrunk ?? separatorIn(before));
    beforeTrunk = undefined;
    if (inParentheses) {
      if (bracketed !== -1) return undefined;
      bracketed = groups.length;
    }
    groups.push(group);
  }
  return { international, groups, separators, bracketed };
}

function separatorIn(between: string): string {
  for (const char of between) {
    if (char === '\u00a0') return ' ';
    if (char !== '(' && char !== ')') return char;
  }
  return '';
}

/**
 * Digits grouped as phone numbers are written: 9 to 15 digits led by what only phone numbers start
 * with (`+` or `00` and a country code, a trunk zero and an area code, an area code in
 * parentheses, the North American 3-3-4, or a label such as `Tel.`), no one-digit group after the
 * area code (ISBNs end in one), and one kind of separator after it (a date with a time mixes them).
 */
function isPhoneNumber({ international, groups, separators, bracketed }: Grouping, labelled: boolean): boolean {
  let digits = 0;
  for (const group of groups) digits += group.length;
  if (digits < 9 || digits > 15) return false;
  const first = groups[0] ?? '';
  if (groups.length === 1) return international || labelled;
  if (international && first.length > 3) return false;
  // The area code: right after the country code, or first.
  const area = international ? 1 : 0;
  if (bracketed !== -1 && bracketed !== area) return false;
  for (let index = area + 1; index < groups.length; index++) if ((groups[index] ?? '').length < 2) return false;
  const kept = separators[area + 1];
  for (let index = area + 2; index < separators.length; index++) if (separators[index] !== kept) return false;
  if (separators.includes('.') && separators.some((separator) => separator !== '.')) return false;
  return international || labelled || bracketed === area || TRUNK_AND_AREA.test(first) || isNorthAmerican(groups);
}

/** `415 555 0100` or `1-800-555-0199`: area code and exchange each start with 2-9. */
function isNorthAmerican(groups: readonly string[]): boolean {
  const local = groups.length === 4 && groups[0] === '1' ? groups.slice(1) : groups;
  const [area = '', exchange = '', line = ''] = local;
  return (
    local.length === 3 &&
    area.length === 3 &&
    exchange.length === 3 &&
    line.length === 4 &&
    area[0] !== '0' &&
    area[0] !== '1' &&
    exchange[0] !== '0' &&
    exchange[0] !== '1'
  );
}

function redactIp(match: string, offset: number, text: string): string {
  if (match === '::' || isIP(match) === 0 || precededBy(NAMED_AS_VERSION, text, offset)) return match;
  return '[ip]';
}

function redactPhone(match: string, offset: number, text: string): string {
  // Counting first spares reading the groups of the many runs that are too short or too long.
  const digits = countDigits(match);
  if (digits < 9 || digits > 17) return match;
  const grouping = readGrouping(match);
  if (grouping === undefined || !isPhoneNumber(grouping, precededBy(PHONE_LABEL, text, offset))) return match;
  return '[phone]';
}

/** Replaces e-mail addresses, phone numbers and IP addresses with `[email]`, `[phone]`, `[ip]`. */
export function redactPii(text: string): string {
  let redacted = text;
  if (redacted.includes('@'))
    redacted = redacted.replace(EMAIL, (match) => (IMAGE_FILE.test(match) ? match : '[email]'));
  if (MAY_HOLD_IP.test(redacted)) redacted = redacted.replace(IP_CANDIDATE, redactIp);
  if (MAY_HOLD_PHONE.test(redacted)) redacted = redacted.replace(PHONE_CANDIDATE, redactPhone);
  return redacted;
}

/** `redactPii` over every string inside a JSON-like value (a copy; the input is left as is). */
export function redactPiiDeep<T>(value: T): T {
  if (typeof value === 'string') return redactPii(value) as T;
  if (Array.isArray(value)) return value.map((item) => redactPiiDeep(item)) as T;
  // An error's message, type and stack are not own enumerable fields: copied as a plain object it
  // would say nothing. It becomes what a log reader expects (pino's shape), scrubbed like the rest.
  if (value instanceof Error) return redactPiiDeep(errorFields(value)) as T;
  if (value !== null && typeof value === 'object') {
    const copy: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) copy[key] = redactPiiDeep(inner);
    return copy as T;
  }
  return value;
}

/** An error as plain fields: its type, message and stack, its own fields (a code, ...) and its cause. */
function errorFields(error: Error): Record<string, unknown> {
  const fields: Record<string, unknown> = { type: error.constructor?.name ?? error.name, message: error.message };
  for (const [key, inner] of Object.entries(error)) fields[key] = inner;
  if (error.stack !== undefined) fields.stack = error.stack;
  if (error.cause !== undefined) fields.cause = error.cause;
  return fields;
}
