"""A stem cell for `provided` functions (a `bootstrap` executable of the function's own).

Started in its sandbox before any function is chosen (HEARTH_PREWARMED=1), it says
HEARTH_PREWARMED_READY on stdout and waits for one line on stdin, `{"env": {...}}`, the
function's whole environment. The function's code is at LAMBDA_TASK_ROOT by then: the cell
becomes its `bootstrap` (execve), in the sandbox it was started in (namespaces, cgroup,
seccomp filter, user), with that environment and nothing else of this interpreter's.
"""
import errno
import json
import os
import signal
import sys


def main():
    print("HEARTH_PREWARMED_READY", flush=True)
    line = sys.stdin.buffer.readline()
    if not line:
        sys.exit(0)
    env = json.loads(line)["env"]
    root = env.get("LAMBDA_TASK_ROOT", "/var/task")
    os.chdir(root)
    # The function's stdin is empty, as for one started without a cell.
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # Python ignores these; an exec keeps ignored signals: the bootstrap starts with the
    # defaults, as when started without a cell.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    path = os.path.join(root, "bootstrap")
    try:
        os.execve(path, [path], env)
    except OSError as e:
        if e.errno == errno.ENOEXEC:
            # A script without `#!`: run by the shell, as execvp (a start without a cell) does.
            try:
                os.execve("/bin/sh", ["/bin/sh", path], env)
            except OSError as e2:
                e = e2
        print(f"cannot start {path}: {e}", file=sys.stderr, flush=True)
        sys.exit(127)


main()
