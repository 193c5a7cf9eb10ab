/**
 * The character rules of HTTP/1.1 (RFC 9110 5.5-5.6, RFC 9112), shared by every parser in the package. Whitespace
 * is SP and HT only: never `\s` or String.prototype.trim(), which also take U+00A0 (a latin1-decoded 0xA0 byte),
 * form feeds and the like, so that `chu\xA0nked` would read as `chunked`.
 */

/** tchar (RFC 9110 5.6.2) by byte value. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

export function isTchar(code: number): boolean {
  return TCHAR[code] === 1;
}

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (TCHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** field-vchar, SP or HT (RFC 9110 5.5): what a header or trailer value may hold. obs-text (0x80-0xFF) included. */
export function isFieldValueChar(code: number): boolean {
  return code === 9 || (code >= 32 && code !== 127 && code <= 255);
}

/**
 * Whole-head grammars, checked in one native regex pass before any field is looked at: token names with the colon
 * right after them (no space before it), values of field-vchar/SP/HT, every line ended by CRLF. That rules out, in
 * one place, obs-fold (a line starting with SP/HT is not a token), bare CR, bare LF, NUL and other controls.
 * Neither pattern can backtrack: each repeated class excludes the delimiter that ends it.
 */
const FIELDS = "(?:[!#$%&'*+\\-.^_`|~0-9A-Za-z]+:[\\t\\x20-\\x7e\\x80-\\xff]*\\r\\n)*$";
// A request-target is ASCII (RFC 3986): no obs-text, which Node's parser refuses too.
export const REQUEST_HEAD = new RegExp(`^[!#$%&'*+\\-.^_\`|~0-9A-Za-z]+ [\\x21-\\x7e]+ HTTP/1\\.[01]\\r\\n${FIELDS}`);
export const RESPONSE_HEAD = new RegExp(`^HTTP/1\\.[01] [1-9][0-9]{2}(?: [\\t\\x20-\\x7e\\x80-\\xff]*)?\\r\\n${FIELDS}`);

/** `s` without leading and trailing SP/HT (optional whitespace, RFC 9110 5.6.3). */
export function trimOws(s: string): string {
  let from = 0;
  let to = s.length;
  while (from < to && (s.charCodeAt(from) === 32 || s.charCodeAt(from) === 9)) from++;
  while (to > from && (s.charCodeAt(to - 1) === 32 || s.charCodeAt(to - 1) === 9)) to--;
  return from === 0 && to === s.length ? s : s.slice(from, to);
}

/** The elements of a comma-separated list (RFC 9110 5.6.1), OWS removed; empty elements are skipped as the RFC asks. */
export function listElements(value: string): string[] {
  const out: string[] = [];
  let pos = 0;
  while (pos <= value.length) {
    let comma = value.indexOf(',', pos);
    if (comma === -1) comma = value.length;
    const element = trimOws(value.slice(pos, comma));
    if (element) out.push(element);
    pos = comma + 1;
  }
  return out;
}

/** True when the list `value` holds `lowerToken` (compared case-insensitively). */
export function listHas(value: string, lowerToken: string): boolean {
  for (const element of listElements(value)) if (element.toLowerCase() === lowerToken) return true;
  return false;
}
