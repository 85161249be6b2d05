"""Where the demo suite's text comes from: real text that every paloma installation already has.

Nothing is downloaded or shipped: the demo reads Python's bundled Language Reference (`pydoc_data`), the
standard library's own docstrings and source code, and the licence files of paloma's runtime dependencies.
Each collector returns documents in a canonical order (sorted by id), so the suite is a pure function of
the installed Python and packages. Folders that Linux distributions split off into optional packages
(tkinter, idlelib, test, lib2to3, distutils, ensurepip, turtle) are never read, so the same Python version
gives the same text on every machine.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import itertools
import re
import sysconfig
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The smallest document the collectors emit: shorter pieces are merged with their neighbours, as a web page
# is one document rather than one per sentence.
MIN_DOCUMENT_BYTES = 600
# The largest: longer texts are cut at paragraph (code: top-level statement) boundaries.
MAX_DOCUMENT_BYTES = 3000

# Standard-library folders that are optional on some systems (Debian splits them off) or are data tables.
_OPTIONAL_OR_DATA = {
    "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "distutils", "ensurepip", "venv",
    "encodings", "pydoc_data", "site-packages", "dist-packages", "__pycache__", "__phello__",
}  # fmt: skip


@dataclass(frozen=True)
class Document:
    """One document of the demo suite before it is split into val, test and train."""

    id: str
    source: str
    domain: str
    text: str

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


# --- splitting long texts into documents -------------------------------------------------------------


def group_pieces(pieces: Iterable[str], min_bytes: int = MIN_DOCUMENT_BYTES, max_bytes: int = MAX_DOCUMENT_BYTES):
    """Join consecutive pieces into documents of at least `min_bytes` and at most about `max_bytes`.

    A piece longer than `max_bytes` is first divided at blank lines, and a paragraph still too long at line
    ends, so no document is much longer than `max_bytes` (only a single over-long line can be). The text is
    kept exactly: the documents concatenate back to the concatenated pieces.
    """
    current: list[str] = []
    size = 0
    for piece in _bounded(pieces, max_bytes):
        n = len(piece.encode("utf-8"))
        if current and size >= min_bytes and size + n > max_bytes:
            yield "".join(current)
            current, size = [], 0
        current.append(piece)
        size += n
    if current:
        yield "".join(current)


def _bounded(pieces: Iterable[str], max_bytes: int) -> Iterator[str]:
    for piece in pieces:
        if len(piece.encode("utf-8")) <= max_bytes:
            yield piece
            continue
        for paragraph in paragraphs(piece):
            if len(paragraph.encode("utf-8")) <= max_bytes:
                yield paragraph
            else:
                yield from paragraph.splitlines(keepends=True)


def paragraphs(text: str) -> list[str]:
    """Split text after each blank line, keeping every character (pieces concatenate back to `text`)."""
    pieces = re.split(r"(?<=\n\n)", text)
    return [p for p in pieces if p]


def python_top_level_blocks(source: str) -> list[str]:
    """Split Python source into top-level blocks, each starting at a `def`/`class` (or its decorators).

    Concatenating the blocks gives back the source exactly; statements between definitions stay with the
    definition before them.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    starts = sorted(
        {
            min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
        | {0}
    )
    bounds = [*starts, len(lines)]
    return ["".join(lines[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def _documents_from(text_pieces: Iterable[str], id_prefix: str, source: str, domain: str) -> Iterator[Document]:
    for i, text in enumerate(group_pieces(text_pieces)):
        if text.strip():
            yield Document(f"{id_prefix}#{i}", source, domain, text)


# --- Python Language Reference (pydoc_data.topics) ---------------------------------------------------

# Topic labels of `pydoc_data.topics`, grouped like the chapters of the Language Reference. Labels a future
# Python adds go to "other" (deterministic for a given Python version).
REFERENCE_DOMAINS: dict[str, tuple[str, ...]] = {
    "statements": (
        "assert", "assignment", "async", "augassign", "break", "class", "compound", "continue", "del", "else",
        "for", "function", "global", "if", "import", "nonlocal", "pass", "raise", "return", "try", "while",
        "with", "match", "type", "typealias",
    ),
    "expressions": (
        "atom-identifiers", "atom-literals", "attribute-references", "await", "binary", "bitwise", "booleans",
        "calls", "comparisons", "conversions", "exprlists", "in", "lambda", "operator-summary", "power",
        "shifting", "slicings", "subscriptions", "unary", "yield", "lists", "dict", "identifiers",
        "id-classes", "strings", "formatstrings", "integers", "floating", "imaginary",
    ),
    "data_model": (
        "attribute-access", "callable-types", "context-managers", "customization", "numeric-types",
        "sequence-types", "specialattrs", "specialnames", "objects", "types",
    ),
    "builtin_types": (
        "bltin-code-objects", "bltin-ellipsis-object", "bltin-null-object", "bltin-type-objects", "numbers",
        "string-methods", "truth", "typesfunctions", "typesmapping", "typesmethods", "typesmodules", "typesseq",
        "typesseq-mutable",
    ),
    "execution_model": ("execmodel", "naming", "dynamic-features", "exceptions", "debugger"),
}  # fmt: skip


def reference_domain(label: str) -> str:
    for domain, labels in REFERENCE_DOMAINS.items():
        if label in labels:
            return domain
    return "other"


def python_reference_documents(source: str = "python_reference") -> list[Document]:
    """The Language Reference as bundled for `help()`: one topic, or a part of a long one, per document."""
    from pydoc_data.topics import topics

    docs = []
    for label in sorted(topics):
        domain = reference_domain(label)
        docs.extend(_documents_from(paragraphs(topics[label]), f"reference/{label}", source, domain))
    return sorted(docs, key=lambda d: d.id)


# --- standard-library docstrings ------------------------------------------------------------------------

# Single-file standard-library modules, grouped like the chapters of the Library Reference. Modules a Python
# version lacks are skipped; packages are left to the code source so the two sources hold different text.
DOCSTRING_DOMAINS: dict[str, tuple[str, ...]] = {
    "text_processing": ("string", "difflib", "textwrap", "stringprep", "rlcompleter", "shlex", "cmd"),
    "data_types": (
        "datetime", "_pydatetime", "calendar", "heapq", "bisect", "weakref", "types", "copy", "pprint",
        "reprlib", "enum", "graphlib", "_collections_abc", "_weakrefset", "functools", "operator",
    ),
    "numeric": ("numbers", "_pydecimal", "fractions", "random", "statistics", "colorsys"),
    "files": (
        "fileinput", "stat", "filecmp", "tempfile", "glob", "fnmatch", "linecache", "shutil", "genericpath",
        "posixpath", "ntpath",
    ),
    "persistence_compression": (
        "pickle", "copyreg", "shelve", "gzip", "bz2", "lzma", "tarfile", "_compression", "zipimport",
    ),
    "file_formats": ("csv", "configparser", "netrc", "plistlib", "wave", "mimetypes", "quopri", "base64"),
    "os_services": ("os", "_pyio", "getpass", "platform", "argparse", "optparse", "getopt", "sysconfig", "locale"),
    "concurrency": ("threading", "subprocess", "sched", "queue", "selectors", "signal", "socket", "ssl"),
    "internet": (
        "mailbox", "webbrowser", "ftplib", "poplib", "imaplib", "smtplib", "uuid", "socketserver", "ipaddress",
        "gettext",
    ),
    "development": ("typing", "pydoc", "doctest", "bdb", "pdb", "timeit", "trace", "tracemalloc", "cProfile",
                    "profile", "pstats"),
    "runtime": (
        "warnings", "atexit", "traceback", "inspect", "site", "code", "codeop", "codecs", "io", "contextlib",
        "dataclasses", "abc",
    ),
    "language": (
        "pkgutil", "modulefinder", "runpy", "ast", "symtable", "token", "keyword", "tokenize", "tabnanny",
        "pyclbr", "py_compile", "compileall", "dis", "pickletools", "opcode",
    ),
}  # fmt: skip


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return f"{node.name}({ast.unparse(node.args)})"


def _docstring_pieces(tree: ast.Module, module: str) -> Iterator[str]:
    """The module docstring, then one piece per public class or function (a class with its methods)."""
    doc = ast.get_docstring(tree)
    if doc:
        yield f"{module}\n\n{doc}\n\n"
    for node in tree.body:
        if not hasattr(node, "name") or node.name.startswith("_"):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
            yield f"{module}.{_signature(node)}\n\n{ast.get_docstring(node)}\n\n"
        elif isinstance(node, ast.ClassDef):
            parts = [f"class {module}.{node.name}\n\n{ast.get_docstring(node) or ''}".rstrip() + "\n\n"]
            for item in node.body:
                is_function = isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                if is_function and not item.name.startswith("_") and ast.get_docstring(item):
                    parts.append(f"{node.name}.{_signature(item)}\n\n{ast.get_docstring(item)}\n\n")
            if len(parts) > 1 or ast.get_docstring(node):
                yield "".join(parts)


def _read_python(path: Path) -> str | None:
    """Source text honouring its coding cookie; None for a file that is not valid Python 3."""
    try:
        with tokenize.open(path) as handle:
            text = handle.read()
        ast.parse(text)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None
    return text


def stdlib_docstring_documents(source: str = "stdlib_docstrings") -> list[Document]:
    """Docstrings of single-file standard-library modules, a module's public API in reading order."""
    lib = stdlib_dir()
    docs = []
    for domain, modules in DOCSTRING_DOMAINS.items():
        for module in modules:
            path = lib / f"{module}.py"
            text = _read_python(path) if path.is_file() else None
            if text is None:
                continue
            pieces = _docstring_pieces(ast.parse(text), module.lstrip("_"))
            docs.extend(_documents_from(pieces, f"docstrings/{module}", source, domain))
    return sorted(docs, key=lambda d: d.id)


# --- standard-library source code ---------------------------------------------------------------------


def stdlib_packages(min_bytes: int) -> list[str]:
    """Standard-library packages with at least `min_bytes` of Python source, leaving out optional folders."""
    lib = stdlib_dir()
    names = []
    for path in sorted(lib.iterdir()):
        if path.name in _OPTIONAL_OR_DATA or not (path / "__init__.py").is_file():
            continue
        if sum(f.stat().st_size for f in _package_files(path)) >= min_bytes:
            names.append(path.name)
    return names


def _package_files(package: Path) -> list[Path]:
    return [f for f in sorted(package.rglob("*.py")) if not set(f.relative_to(package).parts[:-1]) & _OPTIONAL_OR_DATA]


def stdlib_code_documents(min_package_bytes: int, source: str = "stdlib_code") -> list[Document]:
    """Source code of standard-library packages, one domain per package, cut between top-level definitions."""
    lib = stdlib_dir()
    docs = []
    for package in stdlib_packages(min_package_bytes):
        for path in _package_files(lib / package):
            text = _read_python(path)
            if text is None:
                continue
            rel = path.relative_to(lib).as_posix()
            docs.extend(_documents_from(python_top_level_blocks(text), f"code/{rel}", source, package))
    return sorted(docs, key=lambda d: d.id)


# --- licences of paloma's dependencies ----------------------------------------------------------------

_LICENSE_NAME = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE)", re.IGNORECASE)


def runtime_dependencies(distribution: str = "paloma-eval") -> list[str]:
    """Names of paloma's runtime dependencies (not extras): every installation of paloma has them."""
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    names = {re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in requirements if "extra ==" not in r}
    return sorted(names, key=str.lower)


def license_documents(source: str = "licenses", domain: str = "licenses") -> list[Document]:
    """Licence files in the `.dist-info` folders of paloma's installed runtime dependencies.

    Identical texts (many packages ship the same Apache-2.0 file) are kept once, the first in
    (package, path) order. The text depends on the installed versions; the suite records its hash.
    """
    seen: set[str] = set()
    docs = []
    for name in runtime_dependencies():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        files = sorted(
            (f for f in dist.files or () if ".dist-info/" in f.as_posix() and _LICENSE_NAME.match(f.name)),
            key=lambda f: f.as_posix(),
        )
        for file in files:
            path = Path(str(file.locate()))
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            key = hashlib.sha256(" ".join(text.split()).encode()).hexdigest()
            if key in seen or not text.strip():
                continue
            seen.add(key)
            rel = file.as_posix().split(".dist-info/", 1)[1]
            docs.extend(_documents_from(paragraphs(text), f"licenses/{dist.metadata['Name']}/{rel}", source, domain))
    return sorted(docs, key=lambda d: d.id)
