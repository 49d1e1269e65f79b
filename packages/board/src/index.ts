export { type BoardAuth, boardAuthFromEnv } from './board-auth.js';
export { type BoardProcessOptions, runBoardProcess } from './board-process.js';
export { type BoardOptions, type RunningBoard, startBoard } from './board-server.js';
export { type FailurePolicy, failurePolicyFromEnv } from './failure-policy.js';
export { securityHeaders } from './security-headers.js';
export { requireBoardAuth, type SignInGuardOptions } from './sign-in-guard.js';
