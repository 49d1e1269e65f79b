export { JsonlFile } from './jsonl-file.js';
export { JsonlTarget, type JsonlTargetOptions } from './jsonl-target.js';
export { isLocalProcessAlive } from './local-process.js';
export { type OpenTargetOptions, openTarget, type SinkKind, sinkKind } from './open-target.js';
export {
  OutboxConsumer,
  type OutboxConsumerOptions,
  type OutboxEntry,
  type SinkProgress,
} from './outbox-consumer.js';
export { resolveEntry } from './resolve-entry.js';
export { lineOf, type RecordEntry, type SinkEntry, type SinkItem, type SinkTarget } from './sink-target.js';
