"""Code identity of a task function: its source and what it depends on in the user's code.

``code_identity(fn)`` walks from the function through the global names and closure variables
its code uses (attribute access on an imported user module included) and collects one hash per
component:

- ``source``: the function's normalised source (no decorators, comments or formatting);
- ``defaults``: the values of its default arguments, when it has some;
- ``helper:<module>.<qualname>`` / ``class:<module>.<qualname>``: each function or class of
  user code it reaches, transitively (cycles are visited once);
- ``const:<module>.<name>``: each module-level value it reads, by ``value_hash``;
- ``opaque:<module>.<name>``: a module-level object with no stable hash, by its type only;
- ``lib:<package>``: the version of each third-party package it reaches.

User code is any module whose file is outside the standard library and site-packages
(``__main__``, DAG files, your own packages, editable installs, code in a venv's folder); the
standard library counts for nothing, third-party packages and provtask itself for their
versions.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import hashlib
import importlib.metadata
import inspect
import os
import site
import sys
import sysconfig
import textwrap
from collections.abc import Callable
from pathlib import Path, PurePath
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType
from typing import Any

from .errors import ResourceError, UnhashableValue
from .hashing import HASH_SCHEME, value_hash

_PREFIX = f"provtask-code-v{HASH_SCHEME}"
# Digests by id of code object; the code object is kept so that its id is not reused. Not by
# equality: code objects that differ only in annotations or default values compare equal.
_DIGESTS: dict[int, tuple[object, str]] = {}
_SOURCES: dict[int, tuple[object, str]] = {}  # normalised sources, kept the same way
_DIGESTS_MAX = 4096
_DAGFILE_MODULE_PREFIX = "provtask_dagfile_"


@dataclasses.dataclass(frozen=True)
class CodeIdentity:
    """The hash of a task's code and the components it is made of (sorted by name)."""

    hash: str
    components: dict[str, str]
    # Normalised source of the ``source``, ``helper:`` and ``class:`` components known by
    # source (for ``provtask why`` to show what changed); not part of the identity.
    sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)


def code_identity(fn: Callable) -> CodeIdentity:
    """The identity of ``fn`` and of the user code, constants and libraries it reaches."""
    walker = _Walker()
    walker.visit_task(fn)
    components = dict(sorted(walker.components.items()))
    text = "\n".join([_PREFIX, *(f"{name}={digest}" for name, digest in components.items())])
    digest = hashlib.blake2b(text.encode(), digest_size=32).hexdigest()
    return CodeIdentity(digest, components, dict(sorted(walker.sources.items())))


def code_hash(fn: Callable) -> str:
    """``code_identity(fn).hash``."""
    return code_identity(fn).hash


def function_source(fn: Callable) -> str | None:
    """The function's source without decorators, docstrings, comments or formatting, or None
    if unknown."""
    return _normalised_source(fn, (ast.FunctionDef, ast.AsyncFunctionDef))


def _normalised_source(obj: Any, kinds: tuple[type, ...]) -> str | None:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            node.decorator_list = []
            _drop_docstrings(node)
            return ast.unparse(node)
    return None


def _drop_docstrings(tree: ast.AST) -> None:
    """Docstrings are documentation: editing one must not invalidate cached results."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and (
            node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str)
        ):
            node.body = node.body[1:] or [ast.Pass()]


class _Walker:
    """Collects the components reachable from one task function."""

    def __init__(self) -> None:
        self.components: dict[str, str] = {}
        self.sources: dict[str, str] = {}
        self.visited: set[int] = set()  # functions and classes, visited once
        self.open_modules: set[int] = set()  # user modules being resolved (cycle guard)

    def visit_task(self, fn: Callable) -> None:
        fn = _unwrap(fn)
        if not isinstance(fn, FunctionType):
            raise ResourceError(
                f"@task must decorate a Python function (def or lambda), got {type(fn).__name__}"
            )
        self.visited.add(id(fn))
        self.components["source"] = _function_digest(fn)
        self._keep_source("source", fn)
        if (defaults := self._defaults(fn)) is not None:
            self.components["defaults"] = defaults
        self._scan(fn)

    def _scan(self, fn: FunctionType) -> None:
        """Follow the global names and closure variables of ``fn``'s code."""
        names = _code_names(fn.__code__)
        namespace = fn.__globals__
        label = _module_label(namespace.get("__name__"), namespace.get("__file__"))
        for name in sorted(names):
            if name in namespace:
                self._reference(namespace[name], f"{label}.{name}", names)
            elif name not in vars(builtins) and name in sys.modules:
                self._reference(sys.modules[name], name, names)  # imported inside the function
        cells = zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True)
        for name, cell in cells:
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: the variable is not bound yet
                continue
            self._reference(value, f"{label}.{fn.__qualname__}.{name}", names)

    def _reference(self, obj: Any, where: str, names: frozenset[str]) -> None:
        if isinstance(obj, ModuleType):
            self._module(obj, names)
            return
        obj = _unwrap(obj)
        if isinstance(obj, MethodType):
            self._reference(obj.__func__, where, names)
        elif isinstance(obj, functools.partial):
            self._reference(obj.func, where, names)
            self._value((obj.args, obj.keywords), where, names)
        elif isinstance(obj, FunctionType | type):
            if id(obj) not in self.visited:
                self.visited.add(id(obj))
                self._definition(obj)
        elif isinstance(obj, BuiltinFunctionType):
            self._library(getattr(obj, "__module__", None))
        else:
            self._value(obj, where, names)

    def _definition(self, obj: FunctionType | type) -> None:
        module = obj.__module__
        if not _is_user_module(module):
            self._library(module)
            return
        namespace = sys.modules.get(module)
        file = getattr(namespace, "__file__", None)
        if isinstance(obj, FunctionType):
            file = obj.__globals__.get("__file__")
        name = f"{_module_label(module, file)}.{obj.__qualname__}"
        if isinstance(obj, type):
            self.components[f"class:{name}"] = self._class(obj)
            self._keep_source(f"class:{name}", obj)
            return
        digest = _function_digest(obj)
        self._keep_source(f"helper:{name}", obj)
        defaults = self._defaults(obj)
        self.components[f"helper:{name}"] = digest if defaults is None else f"{digest}+{defaults}"
        self._scan(obj)

    def _keep_source(self, component: str, obj: FunctionType | type) -> None:
        if (text := _source_text(obj)) is not None:
            self.sources[component] = text

    def _class(self, cls: type) -> str:
        """The class's digest; its methods' references and user base classes are followed."""
        methods = [
            (attribute, function)
            for attribute, member in sorted(vars(cls).items())
            for function in _functions_of(member)
            # Not what other code put there (dataclasses' generated methods, Enum's).
            if function.__code__.co_filename != "<string>" and _is_user_module(function.__module__)
        ]
        for _, function in methods:
            self._scan(function)
        for base in cls.__bases__:
            if base is not object:
                self._reference(base, "", frozenset())
        return _remembered(cls, lambda: _class_digest(cls, methods))

    def _module(self, module: ModuleType, names: frozenset[str]) -> None:
        """A user module: the attributes the code names; a library module: its version."""
        if not _is_user_module(module.__name__):
            self._library(module.__name__)
            return
        if id(module) in self.open_modules:
            return
        self.open_modules.add(id(module))
        namespace = vars(module)
        label = _module_label(module.__name__, namespace.get("__file__"))
        for name in sorted(names):
            if name in namespace:
                self._reference(namespace[name], f"{label}.{name}", names)
        self.open_modules.discard(id(module))

    def _value(self, value: Any, where: str, names: frozenset[str]) -> None:
        if isinstance(value, PurePath):  # a path constant is its text, not the file's content
            self.components[f"const:{where}"] = value_hash(PurePath(value))
            return
        try:
            self.components[f"const:{where}"] = value_hash(value)
        except UnhashableValue:
            cls = type(value)
            if _is_user_module(cls.__module__):  # its changes are not tracked: say so
                self.components[f"opaque:{where}"] = f"{cls.__module__}.{cls.__qualname__}"
            self._reference(cls, where, names)

    def _defaults(self, fn: FunctionType) -> str | None:
        """value_hash of the default values; a default with no stable hash counts by type."""
        values = [*(fn.__defaults__ or ()), *sorted((fn.__kwdefaults__ or {}).items())]
        if not values:
            return None
        hashes = []
        for value in values:
            try:
                hashes.append(value_hash(value))
            except UnhashableValue:
                hashes.append(f"{type(value).__module__}.{type(value).__qualname__}")
                self._reference(value, f"{fn.__qualname__}.<default>", frozenset())
        return hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16]

    def _library(self, module: str | None) -> None:
        top = (module or "builtins").partition(".")[0]
        if top not in sys.stdlib_module_names and top != "builtins":
            self.components[f"lib:{top}"] = _library_version(top)


def _unwrap(obj: Any) -> Any:
    """Follow ``__wrapped__`` (functools.wraps, lru_cache, provtask tasks) to the function."""
    seen = set()
    while not isinstance(obj, type | ModuleType) and id(obj) not in seen:
        seen.add(id(obj))
        try:
            wrapped = obj.__dict__.get("__wrapped__") if hasattr(obj, "__dict__") else None
        except Exception:  # objects whose attribute access runs arbitrary code
            return obj
        if wrapped is None:
            return obj
        obj = wrapped
    return obj


def _functions_of(member: Any) -> list[FunctionType]:
    if isinstance(member, staticmethod | classmethod):
        member = member.__func__
    if isinstance(member, property):
        return [f for f in (member.fget, member.fset, member.fdel) if isinstance(f, FunctionType)]
    return [member] if isinstance(member, FunctionType) else []


@functools.lru_cache(maxsize=4096)
def _code_names(code: CodeType) -> frozenset[str]:
    """Global and attribute names used by ``code`` and the code nested in it (lambdas, ...)."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            names |= _code_names(constant)
    return frozenset(names)


def _function_digest(fn: FunctionType) -> str:
    """sha256 of the normalised source; the bytecode when there is no source.

    Remembered per code object: a definition is read and parsed once per process, and a
    function redefined (in a notebook, or by reloading its module) has a new code object.
    """

    def compute() -> str:
        source = _source_text(fn)
        payload = source.encode() if source is not None else _bytecode_identity(fn.__code__)
        return hashlib.sha256(payload).hexdigest()

    return _remembered(fn.__code__, compute)


def _class_digest(cls: type, methods: list[tuple[str, FunctionType]]) -> str:
    """sha256 of the class's normalised source; its methods' digests when there is none."""
    source = _normalised_source(cls, (ast.ClassDef,))
    if source is None:
        source = "\n".join(f"{name}:{_function_digest(function)}" for name, function in methods)
    return hashlib.sha256(source.encode()).hexdigest()


def _source_text(obj: FunctionType | type) -> str | None:
    """The normalised source of a function or class, once per code object or class."""
    if isinstance(obj, type):
        text = _remembered(obj, lambda: _normalised_source(obj, (ast.ClassDef,)) or "", _SOURCES)
    else:
        text = _remembered(obj.__code__, lambda: function_source(obj) or "", _SOURCES)
    return text or None


def _remembered(
    key: object, compute: Callable[[], str], memo: dict[int, tuple[object, str]] | None = None
) -> str:
    """``compute()``, once per code object or class while it lives."""
    memo = _DIGESTS if memo is None else memo
    if (known := memo.get(id(key))) is not None:
        return known[1]
    digest = compute()
    if len(memo) >= _DIGESTS_MAX:
        memo.clear()
    memo[id(key)] = (key, digest)
    return digest


def _bytecode_identity(code: CodeType) -> bytes:
    """Bytecode, names and constants; nested functions by their own identity, never by
    their repr (which holds memory addresses)."""
    constants = [
        hashlib.sha256(_bytecode_identity(c)).hexdigest() if isinstance(c, CodeType) else repr(c)
        for c in code.co_consts
    ]
    return code.co_code + repr((constants, code.co_names)).encode()


def _module_label(module: str | None, file: str | None) -> str:
    """The name a module is imported by: a DAG file or a script is named after its file, so
    ``provtask run sweep.py`` and ``python sweep.py`` give the same identity."""
    if module is None:
        return "<unknown>"
    if file and (module == "__main__" or module.startswith(_DAGFILE_MODULE_PREFIX)):
        return Path(file).stem
    return module


def _is_user_module(name: str | None) -> bool:
    """Whether a module is user code, decided by where its file lives."""
    if name is None or name == "__main__":
        return True
    if name.partition(".")[0] == "provtask":
        return False
    module = sys.modules.get(name)
    if module is None:  # defined by exec() in a namespace, or a module file never registered
        return True
    file = getattr(module, "__file__", None)
    return file is not None and not _is_library_file(file)  # no file: built in or frozen


@functools.lru_cache(maxsize=4096)
def _is_library_file(file: str) -> bool:
    path = os.path.realpath(file)
    return any(path.startswith(root) for root in _library_roots())


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    """The standard library and every site-packages directory. Not ``sys.prefix`` itself:
    a venv made at a project's root, or Debian's ``/usr``, has user code under it."""
    roots = set(site.getsitepackages())
    roots.add(site.getusersitepackages())
    paths = sysconfig.get_paths()
    roots.update(paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib"))
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots if root)


@functools.cache
def _library_version(top: str) -> str:
    """The installed version of the distribution providing the import name ``top``."""
    try:  # most distributions are named like their package; the full map takes ~0.2 s
        return importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:
        pass
    for distribution in _distributions().get(top, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return str(getattr(sys.modules.get(top), "__version__", "unknown"))


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()
