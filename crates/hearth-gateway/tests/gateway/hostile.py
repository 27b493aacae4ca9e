# A hostile function: each event names one attack; the result says how it ended.
import ctypes, errno, os, socket, subprocess

libc = ctypes.CDLL(None, use_errno=True)


def attempt(fn, *args):
    if fn(*args) == 0:
        return "allowed"
    return os.strerror(ctypes.get_errno())


def read(path):
    try:
        with open(path, "rb") as f:
            return "read: " + f.read(4096).decode(errors="replace")
    except OSError as e:
        return e.strerror


def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "allowed"
    except OSError as e:
        return e.strerror


def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return "connected"
    except OSError as e:
        return e.strerror or str(e)


def fork_bomb():
    children, error = [], None
    while len(children) < 5000:
        try:
            pid = os.fork()
        except OSError as e:
            error = e.strerror
            break
        if pid == 0:
            os.read(os.pipe()[0], 1)  # blocks until killed
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    return {"forked": len(children), "error": error}


def setuid_binary(path):
    # Popen returns once the exec has happened; the child blocks reading its stdin, and its
    # credentials stay readable in /proc until it is reaped.
    st = os.stat(path)
    child = subprocess.Popen([path, "-c", "true", "root"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open("/proc/%d/status" % child.pid) as f:
        uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
    child.kill()
    child.wait()
    return {"setuid_bit": bool(st.st_mode & 0o4000), "owner": st.st_uid, "euid": int(uids[1]), "uid": os.getuid()}


def handler(event, context):
    a = event["attack"]
    if a == "read":
        return {p: read(p) for p in event["paths"]}
    if a == "write":
        return {p: write(p) for p in event["paths"]}
    if a == "environment":
        return {"environ": dict(os.environ), "proc1": read("/proc/1/environ"),
                "proc1_has_host_env": "CARGO" in open("/proc/1/environ").read()}
    if a == "processes":
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        return {"pids": sorted(int(p) for p in pids),
                "commands": sorted(open("/proc/%s/cmdline" % p).read().replace("\0", " ").strip() for p in pids)}
    if a == "connect":
        return {"%s:%d" % (h, p): connect(h, p) for h, p in event["targets"]}
    if a == "fork_bomb":
        return fork_bomb()
    if a == "memory_bomb":
        hog = []
        while True:
            hog.append(bytearray(16 << 20))
    if a == "fill_tmp":
        written, chunk = 0, b"x" * (1 << 20)
        try:
            with open("/tmp/fill", "wb") as f:
                while written < (16 << 30):
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
            return {"fill": "allowed", "mb": written >> 20}
        except OSError as e:
            return {"fill": e.strerror, "mb": written >> 20}
        finally:
            try:
                os.remove("/tmp/fill")
            except OSError:
                pass
    if a == "spin":
        while True:
            pass
    if a == "open_files":
        held = []
        try:
            for _ in range(10000):
                held.append(open("/dev/null"))
            return {"opened": len(held), "error": None}
        except OSError as e:
            return {"opened": len(held), "error": e.strerror}
        finally:
            for f in held:
                f.close()
    if a == "syscalls":
        os.makedirs("/tmp/jail", exist_ok=True)
        return {
            "ptrace_attach_parent": attempt(libc.ptrace, 16, os.getppid(), None, None),
            "mount": attempt(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
            "remount_root_rw": attempt(libc.mount, None, b"/", None, 32 | 0x20, None),
            "unshare_user": attempt(libc.unshare, 0x10000000),
            "unshare_mount": attempt(libc.unshare, 0x00020000),
            "init_module": attempt(libc.init_module, None, 0, b""),
            "finit_module": attempt(libc.syscall, 313, 0, b"", 0),
            "chroot": attempt(libc.chroot, b"/tmp/jail"),
            "setuid_root": attempt(libc.setuid, 0),
        }
    if a == "setuid":
        return {p: setuid_binary(p) for p in event["paths"]}
    raise ValueError("unknown attack %r" % a)
