/**
 * A strict JSON parser for untrusted evidence: integers become bigint (ts_ns exceeds
 * 2^53), fractions and exponents are refused (canonical rtev JSON has none), duplicate
 * keys are refused, and nesting is bounded. It throws SyntaxError with a short reason.
 */
export type StrictValue = null | boolean | bigint | string | StrictValue[] | { [key: string]: StrictValue };

const MAX_DEPTH = 64;

/** parseStrict parses one JSON text. */
export function parseStrict(text: string): StrictValue {
  const p = new Parser(text);
  const value = p.value(0);
  p.ws();
  if (p.i !== text.length) p.fail('trailing characters');
  return value;
}

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  fail(reason: string): never {
    throw new SyntaxError(`${reason} at offset ${this.i}`);
  }

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.i++;
    }
  }

  value(depth: number): StrictValue {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.integer();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    return this.fail('unexpected character');
  }

  object(depth: number): StrictValue {
    this.i++;
    const out: { [key: string]: StrictValue } = Object.create(null);
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('expected a key');
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(out, key)) this.fail(`duplicate key "${key.slice(0, 40)}"`);
      this.ws();
      if (this.s[this.i] !== ':') this.fail('expected ":"');
      this.i++;
      out[key] = this.value(depth + 1);
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return out;
      if (c !== ',') this.fail('expected "," or "}"');
    }
  }

  array(depth: number): StrictValue {
    this.i++;
    const out: StrictValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') this.fail('expected "," or "]"');
    }
  }

  string(): string {
    const start = this.i;
    this.i++;
    for (;;) {
      const c = this.s.charCodeAt(this.i);
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c < 0x20) this.fail('control character in string');
      if (c === 0x22) break;
      if (c === 0x5c) this.i++;
      this.i++;
    }
    this.i++;
    try {
      return JSON.parse(this.s.slice(start, this.i)) as string;
    } catch {
      return this.fail('bad string escape');
    }
  }

  integer(): bigint {
    const m = /^-?(0|[1-9][0-9]*)/.exec(this.s.slice(this.i, this.i + 400));
    if (m === null) return this.fail('bad number');
    this.i += m[0].length;
    const next = this.s[this.i];
    if (next === '.' || next === 'e' || next === 'E') this.fail('only integers are allowed');
    return BigInt(m[0]);
  }
}

export type StrictObject = { [key: string]: StrictValue };

/** isObj tells a JSON object from arrays and scalars. */
export function isObj(v: StrictValue | undefined): v is StrictObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
