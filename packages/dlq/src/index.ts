export { type AttemptRecord, type DeadLetter, type DeadLetterSummary, summarize } from './dead-letter.js';
export { DeadLetterQueue, type ListOptions } from './dead-letter-queue.js';
export { type ReplayReport, replayDeadLetters } from './replay.js';
