import { canonicalize } from '../../src/encode/canonical';
import { PathFilter } from '../../src/ingest/path-filter';
import { Pipeline } from '../../src/ingest/pipeline';
import type { RecordSink } from '../../src/store/sink';

/**
 * replayFixture feeds recorded ring records ([u32 len][bytes]...) through the real pipeline.
 * `lines` are the records it writes. function_call records become evidence only once
 * symbolized against the live process, so `calls` holds what the decoder gives for them
 * (header, ip, target id, stack), one canonical JSON line each.
 */
export function replayFixture(samples: Buffer): { lines: string[]; calls: string[]; pipeline: Pipeline } {
  const lines: string[] = [];
  const calls: string[] = [];
  const sink: RecordSink = {
    write: (line) => { lines.push(line); },
    backlogBytes: 0,
    bytesWritten: 0,
    close: async () => {},
  };
  const pipeline = new Pipeline({
    sink, pathFilter: new PathFilter([], []),
    buildFunctionCall: (c) => {
      calls.push(canonicalize({ ...c.header, ip: c.ip, target_id: c.targetId, stack: c.stack, stack_flags: c.stackFlags }));
      return undefined;
    },
  });
  let offset = 0;
  while (offset + 4 <= samples.length) {
    const len = samples.readUInt32LE(offset);
    pipeline.handleRecord(samples.subarray(offset + 4, offset + 4 + len));
    offset += 4 + len;
  }
  return { lines, calls, pipeline };
}
