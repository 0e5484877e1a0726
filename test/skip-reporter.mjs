// A node:test reporter used by test/run.mjs next to the normal one: one JSON
// line per skipped test (file, name, reason), so skips can be listed at the
// end of a run instead of vanishing into the counts.
export default async function* skipReporter(source) {
  for await (const e of source) {
    if (e.type !== 'test:pass' && e.type !== 'test:fail') continue;
    const skip = e.data.skip;
    if (skip === undefined || skip === false) continue;
    yield `${JSON.stringify({ file: e.data.file ?? '', name: e.data.name, reason: typeof skip === 'string' ? skip : '' })}\n`;
  }
}
