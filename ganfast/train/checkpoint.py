"""Checkpoints that survive a crash at any instant and load without unpickling code.

Two promises, both about not losing a run:

* A checkpoint on disk is always complete.  Files are written under a
  temporary name in the destination directory, synced, then renamed over the
  destination (``os.replace`` is atomic within one filesystem), and the
  directory is synced so the rename itself survives a power cut.  A failure
  at any point removes the temporary file and leaves the previous checkpoint
  as it was.
* A checkpoint loads with ``torch.load(weights_only=True)``, which never runs
  code from the file.  ``save_checkpoint`` checks the state *before* writing,
  so a run cannot spend hours producing a file that only an unsafe
  ``pickle`` could read back.

``write_atomically`` is the same mechanism for any file (metrics CSVs,
sample grids, the ``latest`` pointer).
"""

from __future__ import annotations

import collections
import os
import pickle
import random
import re
import stat
import types
import uuid
import warnings
import zipfile
from typing import Any, Callable, Dict, List, Optional

import torch

__all__ = [
    "CheckpointManager",
    "load_checkpoint",
    "load_newest_intact",
    "load_resolved",
    "remove_stale_temporaries",
    "verify_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "write_atomically",
]


# -- atomic writes ---------------------------------------------------------------------------


def _fsync_path(path: str, directory: bool = False) -> None:
    # Opening a directory fails on Windows and on some network filesystems;
    # a directory sync is then out of our hands, the data sync is not.
    flags = os.O_RDONLY if directory else os.O_RDWR
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Create or replace ``path`` so that it is never seen half-written.

    ``write(tmp_path)`` writes the whole content to a fresh temporary file in
    the same directory (same filesystem, so the final rename is atomic).  If
    ``write`` raises, or the process is interrupted, the temporary file is
    removed and an existing ``path`` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # A unique name so that two writers (two ranks, two runs in one folder)
    # never share a temporary file; the leading dot keeps it out of globs.
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    # O_EXCL reserves the name; mode 0o666 lets the umask decide permissions,
    # as an ordinary open() would (mkstemp would force 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    os.close(fd)
    try:
        try:
            # Replacing a file should not change who may read it.
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            pass
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        # BaseException: a Ctrl-C in the middle of a multi-gigabyte save must
        # not leave the partial file behind either.
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_path(directory, directory=True)


_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def remove_stale_temporaries(directory: str) -> List[str]:
    """Remove the temporary files :func:`write_atomically` left in ``directory`` when its process was killed
    (``.{name}.{pid}.{hex}.tmp`` of a process that no longer runs); returns their paths.  Files of live
    processes (another run writing there) are left alone."""
    removed = []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        m = _TEMPORARY.fullmatch(name)
        if m and not _alive(int(m.group("pid"))):
            path = os.path.join(directory, name)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed


# -- what weights_only loading accepts ---------------------------------------------------------

# Kept to types that torch.load(weights_only=True) has accepted for many
# releases (the oldest torch we support included), not everything the newest
# release happens to allow.
_SCALARS = (int, float, bool, str, bytes, type(None), torch.Size, torch.dtype, torch.device)
_TENSORS = (torch.Tensor, torch.nn.Parameter)
_MAPPINGS = (dict, collections.OrderedDict)
_SEQUENCES = (list, tuple)

_ALLOWED_HINT = (
    "a checkpoint may hold only tensors, int/float/bool/str/bytes/None, torch.Size/dtype/device, "
    "and lists, tuples and dicts (str or int keys) of those, so that torch.load(weights_only=True) can read it"
)


def _describe(value: Any) -> str:
    """What ``value`` is, with a hint at the usual fix."""
    kind = type(value)
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.LambdaType)):
        return "is a function"
    if isinstance(value, type):
        return f"is a class ({value.__module__}.{value.__qualname__})"
    if isinstance(value, types.ModuleType):
        return f"is a module ({value.__name__})"
    if isinstance(value, torch.nn.Module):
        return f"is an nn.Module ({kind.__name__}); store its state_dict() instead"
    if isinstance(value, torch.optim.Optimizer):
        return f"is an optimizer ({kind.__name__}); store its state_dict() instead"
    if isinstance(value, torch.Tensor):
        return f"is a tensor subclass ({kind.__module__}.{kind.__qualname__}); store a plain tensor"
    if kind.__module__ == "numpy":
        if kind.__name__ == "ndarray":
            return "is a numpy.ndarray; convert it with torch.from_numpy()"
        return f"is a numpy.{kind.__name__}; convert it with .item() or torch.as_tensor()"
    if isinstance(value, (set, frozenset)):
        return f"is a {kind.__name__}; store a sorted list instead"
    if isinstance(value, (bool, int, float, str, bytes, list, tuple, dict)):
        # Subclasses (enums, namedtuples, defaultdicts) pickle as their class.
        return f"is a {kind.__module__}.{kind.__qualname__}, a subclass of a plain type; convert it to the plain type"
    return f"is a {kind.__module__}.{kind.__qualname__} object"


def _validate(value: Any, where: str, active: set) -> None:
    kind = type(value)
    if kind in _SCALARS or kind in _TENSORS:
        return
    if kind in _MAPPINGS or kind in _SEQUENCES:
        if id(value) in active:
            raise TypeError(f"{where} contains itself; a checkpoint must be a tree, not a cycle")
        active.add(id(value))
        if kind in _MAPPINGS:
            for key, item in value.items():
                if type(key) not in (str, int, bool):
                    raise TypeError(
                        f"{where} has a key {key!r} of type {type(key).__name__}; "
                        "checkpoint dict keys must be str or int"
                    )
                _validate(item, f"{where}[{key!r}]", active)
        else:
            for i, item in enumerate(value):
                _validate(item, f"{where}[{i}]", active)
        active.discard(id(value))
        return
    raise TypeError(f"{where} {_describe(value)}: {_ALLOWED_HINT}")


def check_state(state: Any) -> None:
    """Raise TypeError naming the first entry of ``state`` that weights_only loading would refuse."""
    if type(state) not in _MAPPINGS:
        raise TypeError(f"a checkpoint state must be a dict, not {type(state).__name__}")
    _validate(state, "state", set())


# -- save / load -------------------------------------------------------------------------------


def save_checkpoint(path: str, state: Dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (see the module docstring).

    ``state`` is checked first: anything ``torch.load(weights_only=True)``
    would refuse raises TypeError naming its key path (for example
    ``state['config']['fn'] is a function``) and nothing is written.
    """
    check_state(state)
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def resolve_checkpoint(path: str) -> str:
    """The checkpoint file ``path`` names: a file as it is; a run directory, its ``checkpoints``
    directory or their ``latest`` pointer file, the newest intact checkpoint there
    (:meth:`CheckpointManager.latest`).

    Raises:
        FileNotFoundError: nothing at ``path``, or a directory without a checkpoint.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        directory = os.path.join(path, "checkpoints") if os.path.isdir(os.path.join(path, "checkpoints")) else path
        found = CheckpointManager(directory).latest()
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {directory} (expected ckpt-*.pt files written by ganfast train)")
        return found
    if os.path.basename(path) == CheckpointManager.POINTER and os.path.isfile(path) and os.path.getsize(path) < 4096:
        found = CheckpointManager(os.path.dirname(path) or ".").latest()
        if found is None:
            raise FileNotFoundError(f"{path} names no intact checkpoint in its directory")
        return found
    return path


def verify_checkpoint(path: str) -> None:
    """Check every record of a checkpoint against the CRC-32 its zip container carries.

    ``torch.save`` writes a zip archive whose entries each store the CRC-32
    of their bytes (the pickle and every tensor's storage), but
    ``torch.load`` does not check them: a file with flipped bytes loads and
    gives wrong weights.  This reads the whole file once (about as fast as
    the disk) and compares.  Files in torch's legacy non-zip format carry no
    checksum and pass unchecked.

    Raises:
        ValueError: naming the file: a truncated or damaged archive, or the
            first record whose bytes no longer match their CRC-32.
    """
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == b"PK":  # a zip whose directory is gone: cut short
            raise ValueError(f"{path} is truncated: its zip directory is missing (a copy or a write cut short)")
        return
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"{path} is damaged: {type(e).__name__}: {e}") from e
    if bad is not None:
        raise ValueError(f"{path} is corrupt: its record {bad!r} no longer matches its CRC-32 checksum (bit rot, a "
                         f"bad copy or a damaged disk); use another checkpoint")


def load_checkpoint(path: str, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``.

    Every record is first checked against its CRC-32 (:func:`verify_checkpoint`).
    Only ``torch.load(weights_only=True)`` is used: a file that needs
    arbitrary unpickling is refused with ValueError rather than run.  A
    missing file raises FileNotFoundError; a truncated, corrupt or damaged one
    ValueError naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    verify_checkpoint(path)
    try:
        with warnings.catch_warnings():
            # Raised for any non-torch pickle before it is refused below; the
            # refusal says more than the warning does.
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        detail = next((ln.strip() for ln in message.splitlines() if "Unsupported" in ln), "")
        # The restricted unpickler names a refused global this way: the file
        # wants to construct an object that is not a tensor or container.
        if "GLOBAL" in message or "Unsupported global" in message:
            raise ValueError(
                f"refusing to load {path}: it needs unsafe unpickling (classes or functions beyond tensors and "
                f"plain containers, which could run arbitrary code); ganfast loads checkpoints with "
                f"weights_only=True only" + (f" ({detail})" if detail else "")
            ) from e
        raise ValueError(
            f"{path} is not a readable ganfast checkpoint: weights-only unpickling failed"
            + (f" ({detail})" if detail else f" ({message.splitlines()[0] if message else type(e).__name__})")
            + "; a plain pickle is refused because unpickling can run arbitrary code"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, IndexError) as e:
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ValueError(f"{path} is not a readable ganfast checkpoint: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a readable ganfast checkpoint: it holds a {type(state).__name__}, not a dict")
    return state


def load_resolved(path: str, map_location: Any = "cpu") -> Dict[str, Any]:
    """The checkpoint ``path`` names, loaded: a file as it is; a run directory, its ``checkpoints`` directory
    or their ``latest`` file, the newest checkpoint there that passes its checksums (newer damaged ones are
    passed over with a warning naming them).

    Raises:
        FileNotFoundError: nothing at ``path``, or a directory without a checkpoint.
        ValueError: the file (or every checkpoint of the directory) is unreadable or corrupt.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        directory = os.path.join(path, "checkpoints") if os.path.isdir(os.path.join(path, "checkpoints")) else path
    elif os.path.basename(path) == CheckpointManager.POINTER and os.path.isfile(path) and os.path.getsize(path) < 4096:
        directory = os.path.dirname(path) or "."
    else:
        return load_checkpoint(path, map_location=map_location)
    found = load_newest_intact(directory, map_location=map_location)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {directory} (expected ckpt-*.pt files written by ganfast train)")
    _, state, refused = found
    for bad, why in refused:
        warnings.warn(f"passing over {bad}: {why}")
    return state


def load_newest_intact(directory: str, map_location: Any = "cpu") -> Optional[tuple]:
    """``(path, state, refused)``: the newest checkpoint of ``directory`` that loads and passes its checksums
    (:meth:`CheckpointManager.candidates` order), with ``refused`` the ``(path, reason)`` of every newer one
    that did not; None when the directory holds no checkpoint file at all.

    Raises:
        ValueError: checkpoint files are there but none loads; the message names each and why.
    """
    candidates = CheckpointManager(directory).candidates()
    if not candidates:
        return None
    refused = []
    for path in candidates:
        try:
            return path, load_checkpoint(path, map_location=map_location), refused
        except ValueError as e:
            refused.append((path, str(e)))
    raise ValueError(f"no intact checkpoint in {directory}: " + "; ".join(reason for _, reason in refused))


# -- a directory of checkpoints ----------------------------------------------------------------


class CheckpointManager:
    """Numbered checkpoints in one directory, the newest ``keep`` retained.

    Files are ``{prefix}-{step:08d}.pt``.  A small text file ``latest`` names
    the most recently saved one (rewritten atomically); it is a pointer, not
    a copy, so no checkpoint is stored twice.
    """

    POINTER = "latest"

    def __init__(self, directory: str, keep: Optional[int] = 3, prefix: str = "ckpt") -> None:
        if keep is not None and (not isinstance(keep, int) or keep < 0):
            raise ValueError(f"keep must be None or an int >= 0 (0 or None keeps every checkpoint), got {keep!r}")
        if not prefix or os.sep in prefix or (os.altsep and os.altsep in prefix):
            raise ValueError(f"prefix must be a plain file-name prefix, got {prefix!r}")
        self.directory = os.fspath(directory)
        self.keep = keep or None
        self.prefix = prefix
        self._pattern = re.compile(re.escape(prefix) + r"-(\d+)\.pt")

    def path_for(self, step: int) -> str:
        if int(step) < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return os.path.join(self.directory, f"{self.prefix}-{int(step):08d}.pt")

    def _steps(self) -> List[tuple]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            m = self._pattern.fullmatch(name)
            if m:
                found.append((int(m.group(1)), os.path.join(self.directory, name)))
        found.sort()
        return found

    def list(self) -> List[str]:
        """Checkpoint paths present, oldest step first."""
        return [p for _, p in self._steps()]

    def save(self, step: int, state: Dict[str, Any]) -> str:
        """Save ``state`` as step ``step``, point ``latest`` at it, then prune; returns its path.

        Pruning keeps the ``keep`` highest steps and, always, the file just
        written: after resuming from an older checkpoint, later-step files of
        the abandoned run are left for the user to judge rather than the new
        one being deleted.
        """
        path = self.path_for(step)
        save_checkpoint(path, state)
        name = os.path.basename(path)
        pointer = os.path.join(self.directory, self.POINTER)

        def write_pointer(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(name + "\n")

        write_atomically(pointer, write_pointer)
        if self.keep:
            present = self._steps()
            for _, old in present[: max(0, len(present) - self.keep)]:
                if os.path.abspath(old) == os.path.abspath(path):
                    continue
                try:
                    os.remove(old)
                except FileNotFoundError:
                    pass  # another process pruned it first
        return path

    def candidates(self) -> List[str]:
        """Every checkpoint file, the one ``latest`` names first, then by step, newest first (unchecked)."""
        out = []
        try:
            with open(os.path.join(self.directory, self.POINTER), encoding="utf-8") as f:
                name = f.read().strip()
            if name and os.path.basename(name) == name and os.path.isfile(os.path.join(self.directory, name)):
                out.append(os.path.join(self.directory, name))
        except (OSError, UnicodeDecodeError):
            pass
        return out + [p for _, p in reversed(self._steps()) if p not in out and os.path.isfile(p)]

    def latest(self) -> Optional[str]:
        """The checkpoint to resume from, or None.

        The one ``latest`` names when it is still there and intact, else the
        highest step present that is intact.  "Intact" is the cheap check
        that the file ends in a complete zip directory (torch's format), so
        a file truncated by a copy or a full disk is passed over without
        reading gigabytes.
        """
        candidates = []
        try:
            with open(os.path.join(self.directory, self.POINTER), encoding="utf-8") as f:
                name = f.read().strip()
            # Only a bare file name in this directory; never follow a path out of it.
            if name and os.path.basename(name) == name:
                candidates.append(os.path.join(self.directory, name))
        except (OSError, UnicodeDecodeError):
            pass
        candidates += [p for _, p in reversed(self._steps())]
        for path in candidates:
            if os.path.isfile(path) and zipfile.is_zipfile(path):
                return path
        return None


# -- random number generator state -----------------------------------------------------------


def rng_state() -> Dict[str, Any]:
    """The state of torch's, Python's and numpy's global generators, in weights_only-safe types."""
    state: Dict[str, Any] = {"torch": torch.get_rng_state()}
    # Only when CUDA is already initialised: querying it otherwise would
    # create a context on every visible GPU just to save a checkpoint.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    version, internal, gauss_next = random.getstate()
    # The Mersenne Twister words are < 2**32, so int64 holds them exactly.
    state["python"] = {
        "version": int(version),
        "state": torch.tensor(internal, dtype=torch.int64),
        "gauss_next": gauss_next,
    }
    try:
        import numpy as np
    except ImportError:
        return state
    algorithm, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state["numpy"] = {
        "algorithm": str(algorithm),
        "keys": torch.tensor(keys.astype(np.int64).tolist(), dtype=torch.int64),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore generators from ``rng_state()``'s dict; entries that are absent are left alone.

    A ``cuda`` entry is applied to as many devices as are visible now and
    skipped without CUDA (a GPU run resumed on the CPU).
    """
    if "torch" in state:
        torch.set_rng_state(state["torch"].detach().cpu().to(torch.uint8))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for device, s in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.detach().cpu().to(torch.uint8), device)
    py = state.get("python")
    if py is not None:
        internal = py["state"]
        internal = tuple(int(x) for x in (internal.tolist() if isinstance(internal, torch.Tensor) else internal))
        random.setstate((int(py["version"]), internal, py["gauss_next"]))
    npy = state.get("numpy")
    if npy is not None:
        import numpy as np

        keys = npy["keys"]
        keys = np.array(keys.tolist() if isinstance(keys, torch.Tensor) else keys, dtype=np.uint32)
        np.random.set_state(
            (npy["algorithm"], keys, int(npy["pos"]), int(npy["has_gauss"]), float(npy["cached_gaussian"]))
        )
