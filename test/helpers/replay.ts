import { PathFilter } from '../../src/ingest/path-filter';
import { Pipeline } from '../../src/ingest/pipeline';
import type { RecordSink } from '../../src/store/sink';

/** replayFixture feeds recorded ring records ([u32 len][bytes]...) through the real pipeline. */
export function replayFixture(samples: Buffer): { lines: string[]; pipeline: Pipeline } {
  const lines: string[] = [];
  const sink: RecordSink = {
    write: (line) => { lines.push(line); },
    backlogBytes: 0,
    bytesWritten: 0,
    close: async () => {},
  };
  const pipeline = new Pipeline({ sink, pathFilter: new PathFilter([], []) });
  let offset = 0;
  while (offset + 4 <= samples.length) {
    const len = samples.readUInt32LE(offset);
    pipeline.handleRecord(samples.subarray(offset + 4, offset + 4 + len));
    offset += 4 + len;
  }
  return { lines, pipeline };
}
