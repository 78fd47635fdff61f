// Go's encoding/json, as far as libcni depends on it: the scanner that validates a document before
// anything is decoded (its messages and byte offsets are the ones the runtime logs), and a parse
// into a tree that keeps what Go's decoders need: key order and duplicates, number literals as
// written, and strings unquoted with Go's rules for invalid UTF-8 and lone surrogates.
// Ported from go/src/encoding/json/scanner.go and decode.go (unquote); no dependency does this.

export interface GoSyntaxError {
  /** Go's SyntaxError text, e.g. `invalid character '#' looking for beginning of value`. */
  message: string;
  /** Go's SyntaxError.Offset: bytes read when the error was found (1-based offset of the culprit). */
  offset: number;
  /** True when the input ended before the value did: the one case a "half-written" hint is right. */
  atEnd: boolean;
}

/** A JSON value as Go sees it before it is decoded into a Go type. `at` is its byte offset. */
export type GoValue =
  | { kind: 'object'; at: number; entries: Array<[string, GoValue]> }
  | { kind: 'array'; at: number; items: GoValue[] }
  | { kind: 'string'; at: number; value: string }
  | { kind: 'number'; at: number; literal: string }
  | { kind: 'bool'; at: number; value: boolean }
  | { kind: 'null'; at: number };

/** Go's maxNestingDepth. */
const MAX_DEPTH = 10000;

// Scanner states (one per Go step function).
const enum S {
  BeginValueOrEmpty,
  BeginValue,
  BeginStringOrEmpty,
  BeginString,
  EndValue,
  EndTop,
  InString,
  InStringEsc,
  EscU,
  EscU1,
  EscU12,
  EscU123,
  Neg,
  One,
  Zero,
  Dot,
  Dot0,
  E,
  ESign,
  E0,
  T,
  Tr,
  Tru,
  F,
  Fa,
  Fal,
  Fals,
  N,
  Nu,
  Nul,
}

const PARSE_OBJECT_KEY = 0;
const PARSE_OBJECT_VALUE = 1;
const PARSE_ARRAY_VALUE = 2;

const LITERAL_ERRORS: Partial<Record<S, string>> = {
  [S.T]: "in literal true (expecting 'r')",
  [S.Tr]: "in literal true (expecting 'u')",
  [S.Tru]: "in literal true (expecting 'e')",
  [S.F]: "in literal false (expecting 'a')",
  [S.Fa]: "in literal false (expecting 'l')",
  [S.Fal]: "in literal false (expecting 's')",
  [S.Fals]: "in literal false (expecting 'e')",
  [S.N]: "in literal null (expecting 'u')",
  [S.Nu]: "in literal null (expecting 'l')",
  [S.Nul]: "in literal null (expecting 'l')",
};
const LITERAL_NEXT: Partial<Record<S, [number, S]>> = {
  [S.T]: [0x72, S.Tr],
  [S.Tr]: [0x75, S.Tru],
  [S.Tru]: [0x65, S.EndValue],
  [S.F]: [0x61, S.Fa],
  [S.Fa]: [0x6c, S.Fal],
  [S.Fal]: [0x73, S.Fals],
  [S.Fals]: [0x65, S.EndValue],
  [S.N]: [0x75, S.Nu],
  [S.Nu]: [0x6c, S.Nul],
  [S.Nul]: [0x6c, S.EndValue],
};

const ESCAPE_NEXT = {
  [S.EscU]: S.EscU1,
  [S.EscU1]: S.EscU12,
  [S.EscU12]: S.EscU123,
  [S.EscU123]: S.InString,
} as const;

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHex = (c: number): boolean => isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);

/** Go's json.Valid with its error: the first problem, as checkValid reports it. */
export function checkValid(data: Uint8Array): GoSyntaxError | undefined {
  const stack: number[] = [];
  let state: S = S.BeginValue;
  // Set from the step closures; kept in an object so the checks after a step are not narrowed away.
  const scan: { endTop: boolean; error?: GoSyntaxError } = { endTop: false };
  let bytes = 0;

  const fail = (c: number, context: string, atEnd = false): false => {
    scan.error = { message: `invalid character ${quoteChar(c)} ${context}`, offset: bytes, atEnd };
    return false;
  };
  const push = (c: number, parse: number, next: S): boolean => {
    stack.push(parse);
    state = next;
    return stack.length <= MAX_DEPTH || fail(c, 'exceeded max depth');
  };
  const pop = (): void => {
    stack.pop();
    if (stack.length === 0) {
      state = S.EndTop;
      scan.endTop = true;
    } else state = S.EndValue;
  };
  const endValue = (c: number, atEnd: boolean): boolean => {
    if (stack.length === 0) {
      state = S.EndTop;
      scan.endTop = true;
      return isSpace(c) || fail(c, 'after top-level value', atEnd);
    }
    if (isSpace(c)) {
      state = S.EndValue;
      return true;
    }
    const top = stack.length - 1;
    switch (stack[top]) {
      case PARSE_OBJECT_KEY:
        if (c === 0x3a) {
          stack[top] = PARSE_OBJECT_VALUE;
          state = S.BeginValue;
          return true;
        }
        return fail(c, 'after object key', atEnd);
      case PARSE_OBJECT_VALUE:
        if (c === 0x2c) {
          stack[top] = PARSE_OBJECT_KEY;
          state = S.BeginString;
          return true;
        }
        if (c === 0x7d) {
          pop();
          return true;
        }
        return fail(c, 'after object key:value pair', atEnd);
      default:
        if (c === 0x2c) {
          state = S.BeginValue;
          return true;
        }
        if (c === 0x5d) {
          pop();
          return true;
        }
        return fail(c, 'after array element', atEnd);
    }
  };
  const beginValue = (c: number, atEnd: boolean): boolean => {
    if (isSpace(c)) return true;
    switch (c) {
      case 0x7b:
        return push(c, PARSE_OBJECT_KEY, S.BeginStringOrEmpty);
      case 0x5b:
        return push(c, PARSE_ARRAY_VALUE, S.BeginValueOrEmpty);
      case 0x22:
        state = S.InString;
        return true;
      case 0x2d:
        state = S.Neg;
        return true;
      case 0x30:
        state = S.Zero;
        return true;
      case 0x74:
        state = S.T;
        return true;
      case 0x66:
        state = S.F;
        return true;
      case 0x6e:
        state = S.N;
        return true;
    }
    if (c >= 0x31 && c <= 0x39) {
      state = S.One;
      return true;
    }
    return fail(c, 'looking for beginning of value', atEnd);
  };
  const zero = (c: number, atEnd: boolean): boolean => {
    if (c === 0x2e) {
      state = S.Dot;
      return true;
    }
    if (c === 0x65 || c === 0x45) {
      state = S.E;
      return true;
    }
    return endValue(c, atEnd);
  };
  const step = (c: number, atEnd: boolean): boolean => {
    switch (state) {
      case S.BeginValueOrEmpty:
        if (isSpace(c)) return true;
        return c === 0x5d ? endValue(c, atEnd) : beginValue(c, atEnd);
      case S.BeginValue:
        return beginValue(c, atEnd);
      case S.BeginStringOrEmpty:
        if (isSpace(c)) return true;
        if (c === 0x7d) {
          stack[stack.length - 1] = PARSE_OBJECT_VALUE;
          return endValue(c, atEnd);
        }
        state = S.BeginString;
        return step(c, atEnd);
      case S.BeginString:
        if (isSpace(c)) return true;
        if (c === 0x22) {
          state = S.InString;
          return true;
        }
        return fail(c, 'looking for beginning of object key string', atEnd);
      case S.EndValue:
        return endValue(c, atEnd);
      case S.EndTop:
        return isSpace(c) || fail(c, 'after top-level value', atEnd);
      case S.InString:
        if (c === 0x22) state = S.EndValue;
        else if (c === 0x5c) state = S.InStringEsc;
        else if (c < 0x20) return fail(c, 'in string literal', atEnd);
        return true;
      case S.InStringEsc:
        if ('bfnrt\\/"'.includes(String.fromCharCode(c))) state = S.InString;
        else if (c === 0x75) state = S.EscU;
        else return fail(c, 'in string escape code', atEnd);
        return true;
      case S.EscU:
      case S.EscU1:
      case S.EscU12:
      case S.EscU123:
        if (!isHex(c)) return fail(c, 'in \\u hexadecimal character escape', atEnd);
        state = ESCAPE_NEXT[state];
        return true;
      case S.Neg:
        if (c === 0x30) state = S.Zero;
        else if (c >= 0x31 && c <= 0x39) state = S.One;
        else return fail(c, 'in numeric literal', atEnd);
        return true;
      case S.One:
        if (isDigit(c)) return true;
        return zero(c, atEnd);
      case S.Zero:
        return zero(c, atEnd);
      case S.Dot:
        if (!isDigit(c)) return fail(c, 'after decimal point in numeric literal', atEnd);
        state = S.Dot0;
        return true;
      case S.Dot0:
        if (isDigit(c)) return true;
        if (c === 0x65 || c === 0x45) {
          state = S.E;
          return true;
        }
        return endValue(c, atEnd);
      case S.E:
        if (c === 0x2b || c === 0x2d) {
          state = S.ESign;
          return true;
        }
        state = S.ESign;
        return step(c, atEnd);
      case S.ESign:
        if (!isDigit(c)) return fail(c, 'in exponent of numeric literal', atEnd);
        state = S.E0;
        return true;
      case S.E0:
        if (isDigit(c)) return true;
        return endValue(c, atEnd);
      default: {
        const [want, next] = LITERAL_NEXT[state] ?? [-1, S.EndValue];
        if (c !== want) return fail(c, LITERAL_ERRORS[state] ?? '', atEnd);
        state = next;
        return true;
      }
    }
  };

  for (let i = 0; i < data.length; i++) {
    bytes++;
    // Go's stateEndTop records the error but reports it one byte later (or at eof); same result.
    if (!step(data[i] ?? 0, false) || scan.error) return scan.error;
  }
  // Go's eof(): a final space ends a number; anything still open is an error.
  if (scan.endTop) return undefined;
  return atEof(scan, () => step(0x20, true), bytes);
}

/** The end of input: one more space through the scanner, then whatever is still open is an error. */
function atEof(
  scan: { endTop: boolean; error?: GoSyntaxError },
  stepSpace: () => void,
  bytes: number,
): GoSyntaxError | undefined {
  stepSpace();
  if (scan.error) return scan.error;
  if (scan.endTop) return undefined;
  return { message: 'unexpected end of JSON input', offset: bytes, atEnd: true };
}

/** Go's quoteChar: how the scanner names the offending byte. */
export function quoteChar(c: number): string {
  if (c === 0x27) return "'\\''";
  if (c === 0x22) return `'"'`;
  return `'${goQuoteRune(c)}'`;
}

/** strconv.Quote of one rune, without the surrounding quotes. */
function goQuoteRune(r: number): string {
  const escapes: Record<number, string> = {
    0x07: '\\a',
    0x08: '\\b',
    0x0c: '\\f',
    0x0a: '\\n',
    0x0d: '\\r',
    0x09: '\\t',
    0x0b: '\\v',
    0x5c: '\\\\',
    0x22: '\\"',
  };
  const escaped = escapes[r];
  if (escaped) return escaped;
  if (r < 0x20 || r === 0x7f) return `\\x${r.toString(16).padStart(2, '0')}`;
  if (!isGoPrint(r)) return `\\u${r.toString(16).padStart(4, '0')}`;
  return String.fromCodePoint(r);
}

/** strconv.IsPrint for the runes a Go string may hold; enough for quoteChar and %q of names. */
export function isGoPrint(r: number): boolean {
  if (r === 0x20) return true;
  // Letters, marks, numbers, punctuation and symbols; not separators, controls, format, unassigned.
  return /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(String.fromCodePoint(r));
}

/** Go's strconv.Quote (the `%q` verb) of a string. */
export function goQuote(text: string): string {
  let out = '"';
  for (const ch of text) out += goQuoteRune(ch.codePointAt(0) ?? 0);
  return `${out}"`;
}

/** Line and column (1-based, columns in bytes) of a byte offset, for operators reading the file. */
export function lineAndColumn(data: Uint8Array, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, data.length);
  for (let i = 0; i < end; i++) {
    if (data[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Parses a document that checkValid accepted. Iterative, so 10,000 levels of nesting do not
 * exhaust the JS stack.
 */
export function parseValid(data: Uint8Array): GoValue {
  let i = 0;
  const skipSpace = (): void => {
    while (i < data.length && isSpace(data[i] ?? 0)) i++;
  };
  type Frame =
    | { value: Extract<GoValue, { kind: 'object' }>; key?: string }
    | { value: Extract<GoValue, { kind: 'array' }>; key?: undefined };
  const frames: Frame[] = [];
  let result: GoValue | undefined;

  /** Adds a finished value to its container; true when it was the top-level value. */
  const attach = (value: GoValue): boolean => {
    const frame = frames[frames.length - 1];
    if (!frame) {
      result = value;
      return true;
    }
    if (frame.value.kind === 'array') frame.value.items.push(value);
    else {
      frame.value.entries.push([frame.key ?? '', value]);
      frame.key = undefined;
    }
    return false;
  };

  for (;;) {
    skipSpace();
    const frame = frames[frames.length - 1];
    const c = data[i] ?? 0;
    // Closing brackets and separators.
    if (c === 0x7d || c === 0x5d) {
      i++;
      frames.pop();
      if (!frame || attach(frame.value)) break;
      continue;
    }
    if (c === 0x2c) {
      i++;
      continue;
    }
    if (frame?.value.kind === 'object' && frame.key === undefined) {
      // An object key and its colon.
      const end = stringEnd(data, i);
      frame.key = unquote(data, i + 1, end);
      i = end + 1;
      skipSpace();
      i++; // ':'
      continue;
    }
    const at = i;
    let value: GoValue | undefined;
    if (c === 0x7b) {
      i++;
      frames.push({ value: { kind: 'object', at, entries: [] } });
      continue;
    }
    if (c === 0x5b) {
      i++;
      frames.push({ value: { kind: 'array', at, items: [] } });
      continue;
    }
    if (c === 0x22) {
      const end = stringEnd(data, i);
      value = { kind: 'string', at, value: unquote(data, i + 1, end) };
      i = end + 1;
    } else if (c === 0x74) {
      value = { kind: 'bool', at, value: true };
      i += 4;
    } else if (c === 0x66) {
      value = { kind: 'bool', at, value: false };
      i += 5;
    } else if (c === 0x6e) {
      value = { kind: 'null', at };
      i += 4;
    } else {
      while (i < data.length && /[-+.eE0-9]/.test(String.fromCharCode(data[i] ?? 0))) i++;
      value = { kind: 'number', at, literal: Buffer.from(data.subarray(at, i)).toString('latin1') };
    }
    if (attach(value)) break;
  }
  return result ?? { kind: 'null', at: 0 };
}

/** Index of the closing quote of the string starting at `start` (which holds the opening quote). */
function stringEnd(data: Uint8Array, start: number): number {
  let i = start + 1;
  while (i < data.length && data[i] !== 0x22) i += data[i] === 0x5c ? 2 : 1;
  return i;
}

/** Go's unquote: escapes decoded, invalid UTF-8 and lone surrogates replaced by U+FFFD, byte by byte. */
function unquote(data: Uint8Array, start: number, end: number): string {
  let out = '';
  let i = start;
  while (i < end) {
    const c = data[i] ?? 0;
    if (c === 0x5c) {
      const e = data[i + 1] ?? 0;
      i += 2;
      if (e !== 0x75) {
        out += { 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t' }[e] ?? String.fromCharCode(e);
        continue;
      }
      let r = hex4(data, i);
      i += 4;
      if (r >= 0xd800 && r < 0xe000) {
        // A surrogate pair only counts when a valid low half follows as another \u escape.
        const low = data[i] === 0x5c && data[i + 1] === 0x75 ? hex4(data, i + 2) : -1;
        if (r < 0xdc00 && low >= 0xdc00 && low < 0xe000) {
          out += String.fromCodePoint(0x10000 + ((r - 0xd800) << 10) + (low - 0xdc00));
          i += 6;
          continue;
        }
        r = 0xfffd;
      }
      out += String.fromCharCode(r);
      continue;
    }
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    const [rune, size] = decodeRune(data, i, end);
    out += String.fromCodePoint(rune);
    i += size;
  }
  return out;
}

function hex4(data: Uint8Array, at: number): number {
  const text = Buffer.from(data.subarray(at, at + 4)).toString('latin1');
  return /^[0-9a-fA-F]{4}$/.test(text) ? parseInt(text, 16) : -1;
}

/** Go's utf8.DecodeRune: one rune and its size, or U+FFFD and size 1 for any invalid byte. */
export function decodeRune(data: Uint8Array, at: number, end = data.length): [number, number] {
  const b0 = data[at] ?? 0;
  const cont = (k: number, lo = 0x80, hi = 0xbf): number => {
    const b = at + k < end ? (data[at + k] ?? -1) : -1;
    return b >= lo && b <= hi ? b & 0x3f : -1;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    const b1 = cont(1);
    if (b1 >= 0) return [((b0 & 0x1f) << 6) | b1, 2];
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    const b1 = cont(1, b0 === 0xe0 ? 0xa0 : 0x80, b0 === 0xed ? 0x9f : 0xbf);
    const b2 = b1 >= 0 ? cont(2) : -1;
    if (b2 >= 0) return [((b0 & 0x0f) << 12) | (b1 << 6) | b2, 3];
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    const b1 = cont(1, b0 === 0xf0 ? 0x90 : 0x80, b0 === 0xf4 ? 0x8f : 0xbf);
    const b2 = b1 >= 0 ? cont(2) : -1;
    const b3 = b2 >= 0 ? cont(3) : -1;
    if (b3 >= 0) return [((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3, 4];
  }
  return [0xfffd, 1];
}

/** Go's string(bytes) shown as text: each invalid byte becomes U+FFFD, as Go's range loop reads it. */
export function goString(data: Uint8Array): string {
  let out = '';
  for (let i = 0; i < data.length;) {
    const c = data[i] ?? 0;
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    const [rune, size] = decodeRune(data, i);
    out += String.fromCodePoint(rune);
    i += size;
  }
  return out;
}

/**
 * json.Marshal of a value decoded into interface{} (what libcni's InjectConf writes back): objects
 * deduplicated (the last key wins) with keys sorted by their UTF-8 bytes, numbers as float64,
 * strings with Go's escapes (HTML characters, U+2028 and U+2029 included). Iterative, like parseValid.
 */
export function marshalValue(value: GoValue): string {
  let out = '';
  const pending: Array<GoValue | string> = [value];
  while (pending.length > 0) {
    const next = pending.pop() as GoValue | string;
    if (typeof next === 'string') {
      out += next;
      continue;
    }
    switch (next.kind) {
      case 'null':
        out += 'null';
        break;
      case 'bool':
        out += next.value ? 'true' : 'false';
        break;
      case 'number':
        out += goFloat(Number(next.literal));
        break;
      case 'string':
        out += goJsonString(next.value);
        break;
      case 'array': {
        const parts: Array<GoValue | string> = ['['];
        next.items.forEach((item, i) => parts.push(...(i ? [',', item] : [item])));
        parts.push(']');
        for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i] as GoValue | string);
        break;
      }
      case 'object': {
        const entries = [...new Map(next.entries)].sort(([a], [b]) =>
          Buffer.compare(Buffer.from(a), Buffer.from(b)),
        );
        const parts: Array<GoValue | string> = ['{'];
        entries.forEach(([key, item], i) => parts.push(`${i ? ',' : ''}${goJsonString(key)}:`, item));
        parts.push('}');
        for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i] as GoValue | string);
        break;
      }
    }
  }
  return out;
}

/** encoding/json's float64 format: shortest 'f' in [1e-6, 1e21), else 'e' without a padded exponent. */
function goFloat(n: number): string {
  if (Object.is(n, -0)) return '-0';
  // JavaScript's shortest round-trip digits and its switch to exponents match Go's here; Go's 'e'
  // form writes e-07 and then trims it to e-7, which is JavaScript's form already.
  return String(n);
}

const GO_SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

/** A JSON string as encoding/json writes it (HTML-safe). */
function goJsonString(text: string): string {
  let out = '"';
  for (const ch of text) {
    const short = GO_SHORT_ESCAPES[ch];
    const code = ch.codePointAt(0) ?? 0;
    if (short !== undefined) out += short;
    else if (code < 0x20 || ch === '<' || ch === '>' || ch === '&' || code === 0x2028 || code === 0x2029)
      out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}
