/**
 * Whether a process of this host is running: how a sink tells that the writer of a `.part` file,
 * or a consumer named `<host>:<pid>`, died (SIGKILL, a crash) without waiting for a heartbeat.
 */
export function isLocalProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
