"""Regenerate the Python code of the routeopt API from ``proto/routeopt/v1/*.proto``.

``python -m rpc.codegen`` writes ``rpc/pb/``: the protobuf modules (``*_pb2.py``), the gRPC
modules (``*_pb2_grpc.py``) and their mypy-protobuf stubs (``*.pyi``), as flat modules of the
``rpc.pb`` package. ``python -m rpc.codegen --check`` regenerates into a temporary directory and
exits with status 1 if ``rpc/pb/`` differs (CI uses it to catch a stale checkout).

The protos are compiled with ``-I proto`` so that the descriptors are registered under their
API names (``routeopt/v1/route_optimization_service.proto``, package ``routeopt.v1``), which is
what server reflection shows. protoc then writes ``from routeopt.v1 import ...``; those imports
are rewritten to relative ones so that ``rpc.pb`` imports without ``sys.path`` changes.

Output is deterministic for a given grpcio-tools and mypy-protobuf (both pinned in
``pyproject.toml``).
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["PB_DIR", "PROTO_DIR", "check", "generate", "main", "write"]

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PB_DIR = ROOT / "rpc" / "pb"
PROTO_PACKAGE_DIR = Path("routeopt") / "v1"
PB_PACKAGE = "rpc.pb"

_INIT_PY = (
    '"""Generated protobuf and gRPC code of the routeopt API (``routeopt.v1``).\n'
    "\n"
    "Do not edit: regenerate with ``python -m rpc.codegen``.\n"
    '"""\n'
)

_FROM_IMPORT = re.compile(r"^from routeopt\.v1 import ", re.MULTILINE)
_BUILDER_MODULE = re.compile(r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, )'routeopt\.v1\.(\w+)'")
_LEFTOVER_IMPORT = re.compile(r"^\s*(from|import)\s+routeopt\b", re.MULTILINE)


class CodegenError(RuntimeError):
    """protoc or a plugin failed, or the generated code has an import that cannot be rewritten."""


_LONGRUNNING = Path("google") / "longrunning" / "operations.proto"


def _include_dirs(scratch: Path) -> list[Path]:
    import grpc_tools
    from google.type import latlng_pb2

    grpc_tools_protos = Path(grpc_tools.__file__).parent / "_proto"
    # googleapis-common-protos ships google/type/latlng.proto next to latlng_pb2.py.
    googleapis_protos = Path(latlng_pb2.__file__).parent.parent.parent
    dirs = [PROTO_DIR, grpc_tools_protos, googleapis_protos]
    if not (googleapis_protos / _LONGRUNNING).is_file():
        # It ships google/longrunning/operations.proto as operations_proto.proto (the
        # descriptor it registers keeps the original name): offer it under that name.
        shipped = googleapis_protos / _LONGRUNNING.with_name("operations_proto.proto")
        if not shipped.is_file():
            raise CodegenError(f"googleapis-common-protos has no {_LONGRUNNING} nor {shipped}")
        target = scratch / "include" / _LONGRUNNING
        target.parent.mkdir(parents=True)
        shutil.copyfile(shipped, target)
        dirs.append(scratch / "include")
    return dirs


def _plugin(name: str) -> Path:
    """Path of a protoc plugin script installed with the running interpreter (or on PATH)."""
    candidates = [Path(sys.executable).parent / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CodegenError(f"protoc plugin {name!r} not found; install the dev extras (mypy-protobuf)")


def _proto_files() -> list[str]:
    files = sorted((PROTO_DIR / PROTO_PACKAGE_DIR).glob("*.proto"))
    if not files:
        raise CodegenError(f"no .proto file in {PROTO_DIR / PROTO_PACKAGE_DIR}")
    # Virtual names (relative to -I proto) so that descriptors carry the API file names.
    return [f.relative_to(PROTO_DIR).as_posix() for f in files]


def _rewrite(name: str, text: str) -> str:
    text = _FROM_IMPORT.sub("from . import ", text)
    text = _BUILDER_MODULE.sub(rf"\1'{PB_PACKAGE}.\2'", text)
    if _LEFTOVER_IMPORT.search(text):
        raise CodegenError(f"{name}: an import of routeopt.v1 could not be rewritten")
    return text


def generate() -> dict[str, bytes]:
    """Run protoc and return the files of ``rpc/pb`` (file name → content)."""
    with tempfile.TemporaryDirectory(prefix="routeopt-codegen-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"--proto_path={d}" for d in _include_dirs(Path(tmp))),
            f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *_proto_files(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CodegenError(f"protoc failed ({result.returncode}):\n{result.stderr.strip()}")
        generated_dir = out / PROTO_PACKAGE_DIR
        files: dict[str, bytes] = {"__init__.py": _INIT_PY.encode()}
        for path in sorted(generated_dir.iterdir()):
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                files[path.name] = _rewrite(path.name, text).encode("utf-8")
        return files


def _current(pb_dir: Path) -> dict[str, bytes]:
    if not pb_dir.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(pb_dir.iterdir()) if p.is_file()}


def write(files: Mapping[str, bytes], pb_dir: Path = PB_DIR) -> None:
    """Make ``pb_dir`` hold exactly ``files`` (other files are removed, directories kept)."""
    pb_dir.mkdir(parents=True, exist_ok=True)
    for name in _current(pb_dir):
        if name not in files:
            (pb_dir / name).unlink()
    for name, content in files.items():
        target = pb_dir / name
        if not target.is_file() or target.read_bytes() != content:
            target.write_bytes(content)


def check(pb_dir: Path = PB_DIR, *, files: Mapping[str, bytes] | None = None) -> list[str]:
    """Compare ``pb_dir`` with freshly generated code; return the problems (empty: up to date).

    Each problem is a line; a changed file is followed by the start of its unified diff.
    """
    expected = generate() if files is None else files
    actual = _current(pb_dir)
    problems: list[str] = []
    for name in sorted(expected.keys() - actual.keys()):
        problems.append(f"missing: {name}")
    for name in sorted(actual.keys() - expected.keys()):
        problems.append(f"unexpected: {name}")
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] != actual[name]:
            diff = difflib.unified_diff(
                actual[name].decode("utf-8", "replace").splitlines(),
                expected[name].decode("utf-8", "replace").splitlines(),
                fromfile=f"rpc/pb/{name} (checked in)",
                tofile=f"rpc/pb/{name} (generated)",
                lineterm="",
                n=1,
            )
            lines = list(diff)
            shown = "\n".join(f"    {line}" for line in lines[:40])
            more = f"\n    ... ({len(lines) - 40} more diff lines)" if len(lines) > 40 else ""
            problems.append(f"changed: {name}\n{shown}{more}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rpc.codegen", description="Regenerate rpc/pb from proto/."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if rpc/pb differs from the code generated from proto/",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check()
            if problems:
                print(
                    "rpc/pb is out of date with proto/ — run `python -m rpc.codegen` "
                    "(or `make proto`) and commit the result:",
                    file=sys.stderr,
                )
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                return 1
            print("rpc/pb is up to date")
            return 0
        files = generate()
        write(files)
    except CodegenError as e:
        print(f"codegen failed: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {PB_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
