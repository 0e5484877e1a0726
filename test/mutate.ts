// Byte mutations of a serialized message, for the property tests: flip a
// bit, insert, delete or overwrite a byte at drawn positions.
import fc from 'fast-check';

export type Mutation = { op: 'flip' | 'insert' | 'delete' | 'set'; at: number; byte: number };

export const mutation: fc.Arbitrary<Mutation> = fc.record({ op: fc.constantFrom('flip' as const, 'insert' as const, 'delete' as const, 'set' as const), at: fc.nat(), byte: fc.nat({ max: 255 }) });

/** One to four mutations. */
export const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });

export function mutate(body: Buffer, ms: readonly Mutation[]): Buffer {
  const b = [...body];
  for (const m of ms) {
    const i = b.length === 0 ? 0 : m.at % (b.length + (m.op === 'insert' ? 1 : 0));
    if (m.op === 'insert') b.splice(i, 0, m.byte);
    else if (b.length === 0) continue;
    else if (m.op === 'delete') b.splice(i, 1);
    else if (m.op === 'flip') b[i] = b[i]! ^ (1 << (m.byte % 8));
    else b[i] = m.byte;
  }
  return Buffer.from(b);
}
