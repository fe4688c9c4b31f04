// plain(): a decoded message as JSON without proto3 defaults. Keys are names: each comes back as it
// was given, "__proto__" included, and a map's empty values stay (issue 9 item 1).
import { describe, expect, it } from 'vitest';
import { plain } from '../../../src/adapters/gcp/calls';

describe('plain', () => {
  it('keeps a "__proto__" key as a key, in a message and in a map', () => {
    const message = JSON.parse('{"spec": {"__proto__": {"x": 1}, "constructor": "c"}, "labels": {"__proto__": "", "constructor": ""}}');
    const out = plain<Record<string, Record<string, unknown>>>(message);
    expect(Object.getPrototypeOf(out.spec)).toBe(Object.prototype);
    expect(Object.entries(out.spec!)).toEqual([
      ['__proto__', { x: 1 }],
      ['constructor', 'c'],
    ]);
    expect(Object.entries(out.labels!)).toEqual([
      ['__proto__', ''],
      ['constructor', ''],
    ]);
  });

  it('keeps empty substitutions, and still drops proto3 defaults elsewhere', () => {
    expect(plain({ name: 't', disabled: false, description: '', substitutions: { _EMPTY: '', _REGION: 'europe-central2' }, build: { substitutions: { _X: '' } } })).toEqual({
      name: 't',
      substitutions: { _EMPTY: '', _REGION: 'europe-central2' },
      build: { substitutions: { _X: '' } },
    });
  });
});
