"""The sandbox a submission runs in: bubblewrap namespaces, a user of its own, rlimits.

:func:`command` builds the argument list that starts the in-sandbox runner
(``mmlab/teach/_harness.py``). With bubblewrap (``bwrap``) the runner sees:

* read-only: the system (``/usr``, ``/lib*``, ``/bin``, ``/etc``), the Python installation
  and the virtual environment, and the ``mmlab`` package code (mounted alone at
  ``/opt/mmlab/mmlab``, so the project tree, ``solutions/`` and other submissions do not
  exist inside); the data folder ``MMLAB_DATA_DIR`` if it is set;
* read-write: only its scratch folder (``/scratch``, also ``HOME`` and ``TMPDIR``) and
  ``/tmp``, both size-limited tmpfs (``SCRATCH_MB``) that vanish with the sandbox;
* new pid, network, IPC and UTS namespaces: no network, no other process visible; when
  the grader exits or kills it, every process of the submission dies with it
  (``--die-with-parent`` and the pid namespace);
* a user id of its own (via ``setpriv``, :func:`submission_uid`) when the grader runs as
  root, no capabilities, ``no_new_privs``;
* rlimits: address space, processes, file size, open files, no core dumps.

The process limit (``RLIMIT_NPROC``) counts every task of a *user*, system-wide. Were all
submissions run as one user (say ``nobody``), a fork bomb in one would leave a submission
graded beside it unable to start a thread, and change its grade. So, as root, each
submission gets an unused user id of its own; as an ordinary user the limit is the tasks
that user already runs plus the submission's allowance.

Without bubblewrap the grader refuses unless ``--unsafe`` is given (then the runner is an
ordinary child process in its own process group with the same rlimits).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
from pathlib import Path

from mmlab.errors import NotebookError

UID_RANGES = ((100_000, 165_000), (60_000, 65_000))  # candidate ids for submissions (root)
SCRATCH_MB = 512  # size of the submission's writable tmpfs (/scratch, and /tmp)
HARNESS = Path(__file__).with_name("_harness.py")
PACKAGE = Path(__file__).resolve().parents[1]  # .../mmlab

INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; `make install` "
                "does it when run as root), or pass --unsafe to grade without isolation")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def require(unsafe: bool) -> str | None:
    """The bwrap executable, or None in --unsafe mode; a NotebookError when it is missing."""
    path = bwrap_path()
    if path is None and not unsafe:
        raise NotebookError("no sandbox: bubblewrap (bwrap) is not installed, so submissions could "
                            "read solutions/ and other submissions; " + INSTALL_HINT)
    if path is None:
        print("mmlab grade: WARNING: --unsafe and no bubblewrap: submissions run WITHOUT isolation "
              "and can read or change anything this user can", file=sys.stderr)
    elif unsafe:
        print("mmlab grade: WARNING: --unsafe: submissions run WITHOUT the sandbox", file=sys.stderr)
        return None
    return path


def _python_roots() -> list[Path]:
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
             Path(sys.executable).resolve().parents[1]}
    venv = Path(sys.prefix)
    if venv.is_symlink() or venv != venv.resolve():
        roots.add(venv)
    return sorted(roots)


def environment(scratch: str, preimport: list[str], record_fd: int, sandboxed: bool,
                aliases: list[str] = ()) -> dict[str, str]:
    home = "/scratch" if sandboxed else scratch
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": home, "TMPDIR": home, "MPLCONFIGDIR": f"{home}/.mpl",
        "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MMLAB_RECORD_FD": str(record_fd), "MMLAB_PREIMPORT": ",".join(preimport),
        "MMLAB_ALIASES": ",".join(aliases),
        "PYTHONPATH": "/opt/mmlab" if sandboxed else str(PACKAGE.parent),
        "LANG": "C.UTF-8",
    }
    data = os.environ.get("MMLAB_DATA_DIR")
    if data:
        env["MMLAB_DATA_DIR"] = data
    return env


def command(bwrap: str | None, scratch: str, uid: int | None = None) -> list[str]:
    """The argv that starts the runner in ``scratch`` (sandboxed unless ``bwrap`` is None).

    ``uid`` is the submission's user id when the grader runs as root (:func:`submission_uid`).
    """
    py = [sys.executable, "-P", "-s", "-B"]
    if bwrap is None:
        return py + [str(HARNESS)]
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(SCRATCH_MB << 20),
            "--tmpfs", "/tmp"]
    made: set[str] = set()

    def mount(kind: str, src: str, dest: str) -> None:
        # bwrap makes missing parent folders 0700; make them traversable for the submission.
        for parent in reversed(Path(dest).parents):
            if str(parent) != "/" and str(parent) not in made:
                made.add(str(parent))
                args.extend(["--perms", "0755", "--dir", str(parent)])
        args.extend([kind, src, dest])

    for p in ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/sbin", "/etc"):
        args += ["--ro-bind-try", p, p]
    for root in _python_roots():
        mount("--ro-bind", str(root), str(root))
    mount("--ro-bind", str(PACKAGE), "/opt/mmlab/mmlab")
    data = os.environ.get("MMLAB_DATA_DIR")
    if data and Path(data).is_dir():
        mount("--ro-bind", str(Path(data).resolve()), data)
    # Scratch and /tmp are size-limited tmpfs: a submission cannot fill the grader's disk.
    args += ["--perms", "1777", "--size", str(SCRATCH_MB << 20), "--tmpfs", "/scratch",
             "--chdir", "/scratch"]
    args += ["--"]
    if os.geteuid() == 0:
        if uid is None:
            raise NotebookError("mmlab grade runs as root: pass the submission's own user id "
                                "(sandbox.submission_uid())")
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise NotebookError("mmlab grade runs as root but `setpriv` (util-linux) is missing, "
                                "so submissions would run as root; install util-linux")
        args += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return args + py + ["/opt/mmlab/mmlab/teach/_harness.py"]


def _proc_status() -> list[dict[str, str]]:
    """``/proc/<pid>/status`` of every visible process (fields Uid and Threads)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:  # the process ended meanwhile
            continue
        found.append({k: fields.get(k, "").split() for k in ("Uid", "Threads")})
    return found


def tasks_of(uid: int) -> int:
    """Tasks (threads) whose real user id is ``uid``: what ``RLIMIT_NPROC`` counts."""
    return sum(int(p["Threads"][0]) for p in _proc_status()
               if p["Uid"] and p["Threads"] and int(p["Uid"][0]) == uid)


def _mapped(lo: int, hi: int) -> bool:
    """Whether user ids ``lo..hi-1`` exist in this user namespace (containers map fewer)."""
    try:
        with open("/proc/self/uid_map") as f:
            extents = [tuple(map(int, line.split())) for line in f if line.strip()]
    except OSError:
        return hi <= 65_536
    return any(inside <= lo and hi <= inside + count for inside, _, count in extents)


def submission_uid() -> int:
    """An unused user id for one submission (grading as root).

    Unused: no process runs under it and no account has it. Each submission gets its own so
    the per-user process limit of one cannot starve another graded at the same time.
    """
    import pwd
    import secrets

    used = {int(p["Uid"][0]) for p in _proc_status() if p["Uid"]}
    for lo, hi in UID_RANGES:
        if not _mapped(lo, hi):
            continue
        for _ in range(200):
            uid = lo + secrets.randbelow(hi - lo)
            if uid in used:
                continue
            try:
                pwd.getpwuid(uid)
            except KeyError:
                return uid
    raise NotebookError("no unused user id to run the submission under (looked in "
                        + ", ".join(f"{lo}-{hi - 1}" for lo, hi in UID_RANGES) + ")")


def prepare_scratch(scratch: str, uid: int | None = None) -> None:
    """Let the submission's user (``uid``, grading as root) write its scratch folder."""
    os.makedirs(os.path.join(scratch, ".mpl"), exist_ok=True)
    if uid is not None:
        for root, dirs, files in os.walk(scratch):
            for name in [root] + [os.path.join(root, d) for d in dirs]:
                os.chown(name, uid, uid)


def limiter(memory_mb: int, max_procs: int = 256, max_file_mb: int = 512, own_uid: bool = True):
    """A preexec_fn that sets the submission's rlimits (inherited by every child).

    ``max_procs`` is the submission's allowance of tasks. With ``own_uid`` (a user id no
    other process has) that is the limit; otherwise it is added to the tasks this user
    already runs, counted now, so the limit binds the submission and not the user's desktop.
    """
    procs = max_procs if own_uid else tasks_of(os.getuid()) + max_procs

    def apply() -> None:
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb << 20, max_file_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    return apply
