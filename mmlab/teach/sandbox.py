"""The sandbox a submission runs in: bubblewrap namespaces, user ``nobody``, rlimits.

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
* user ``nobody`` (via ``setpriv``) when the grader runs as root, no capabilities,
  ``no_new_privs``;
* rlimits: address space, processes, file size, open files, no core dumps.

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

NOBODY = 65534
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


def command(bwrap: str | None, scratch: str) -> list[str]:
    """The argv that starts the runner in ``scratch`` (sandboxed unless ``bwrap`` is None)."""
    py = [sys.executable, "-P", "-s", "-B"]
    if bwrap is None:
        return py + [str(HARNESS)]
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(SCRATCH_MB << 20),
            "--tmpfs", "/tmp"]
    made: set[str] = set()

    def mount(kind: str, src: str, dest: str) -> None:
        # bwrap makes missing parent folders 0700; make them traversable for `nobody`.
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
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise NotebookError("mmlab grade runs as root but `setpriv` (util-linux) is missing, "
                                "so submissions would run as root; install util-linux")
        args += [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return args + py + ["/opt/mmlab/mmlab/teach/_harness.py"]


def prepare_scratch(scratch: str) -> None:
    """Let the sandbox user write its scratch folder (and nothing else)."""
    os.makedirs(os.path.join(scratch, ".mpl"), exist_ok=True)
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(scratch):
            for name in [root] + [os.path.join(root, d) for d in dirs]:
                os.chown(name, NOBODY, NOBODY)


def limiter(memory_mb: int, max_procs: int = 256, max_file_mb: int = 512):
    """A preexec_fn that sets the submission's rlimits (inherited by every child)."""
    def apply() -> None:
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_NPROC, (max_procs, max_procs))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb << 20, max_file_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    return apply
