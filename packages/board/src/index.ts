export { type BoardAuth, boardAuthFromEnv, type FailurePolicy, requireBoardAuth } from './board-auth.js';
export { type BoardProcessOptions, runBoardProcess } from './board-process.js';
export { type BoardOptions, type RunningBoard, startBoard } from './board-server.js';
export { securityHeaders } from './security-headers.js';
