"""Reading configuration files: YAML that remembers where each value was written, and field
readers that collect every problem with its file, line, column and path (see oncall.config)."""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Control characters and lone surrogates (from "\ud800" in YAML or a mis-encoded environment)
# cannot be stored by PostgreSQL nor encrypted; a secret also may not hold white space.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_SECRET_BYTES = 64 * 1024

Pos = tuple[int, int]  # 1-based line and column


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    column: int
    path: str  # `probes[2].interval`; empty only for the document itself (syntax, root)
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.source}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(ValueError):
    """Every problem of a file; `problems` as lines, `details` as `Problem`s."""

    def __init__(self, problems: list[Problem], missing_env: list[str] | None = None) -> None:
        self.details = problems
        self.problems = [str(p) for p in problems]
        self.missing_env = missing_env or []  # the environment variables the file uses that are not set
        super().__init__("\n".join(self.problems))


# --- reading YAML, remembering where everything was written --------------------------------------

@dataclass
class _Marks:
    start: Pos
    entries: dict[Any, tuple[Pos, Pos]]  # key or index → (where the key is, where the value is)
    duplicates: list[tuple[str, Pos]] = field(default_factory=list)
    # Held so that the id it is filed under cannot be reused (a mapping inside a `!!set` is dropped).
    container: Any = None


def _pos(mark: yaml.Mark) -> Pos:
    return mark.line + 1, mark.column + 1


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus a note of the position of every mapping entry and list item,
    keyed by the id of the dict or list built (the values stay plain Python)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.positions: dict[int, _Marks] = {}
        self.duplicates: dict[int, list[tuple[str, Pos]]] = {}

    def note_duplicates(self, root: yaml.Node) -> None:
        """Keys written twice in a mapping (PyYAML keeps the last silently), found on the nodes
        before merge keys (`<<: *defaults`) are flattened in, each node once (aliases)."""
        todo, seen = [root], set()
        while todo:
            node = todo.pop()
            if id(node) in seen or isinstance(node, yaml.ScalarNode):
                continue
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                todo.extend(node.value)
                continue
            keys: set[str] = set()
            for key_node, value_node in node.value:
                todo.extend((key_node, value_node))
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in keys:
                        self.duplicates.setdefault(id(node), []).append((key_node.value, _pos(key_node.start_mark)))
                    keys.add(key_node.value)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's own slips: `!!timestamp 2024-13-45`, `!!int ""`, `!!bool x`
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value ({exc})",
                                                    node.start_mark) from None

    def _mapping(self, node):
        data: dict = {}
        yield data
        data.update(self.construct_mapping(node))
        entries = {self.construct_object(k): (_pos(k.start_mark), _pos(v.start_mark)) for k, v in node.value}
        self.positions[id(data)] = _Marks(_pos(node.start_mark), entries, self.duplicates.get(id(node), []), data)

    def _sequence(self, node):
        data: list = []
        yield data
        data.extend(self.construct_sequence(node))
        self.positions[id(data)] = _Marks(
            _pos(node.start_mark), {i: (_pos(n.start_mark), _pos(n.start_mark)) for i, n in enumerate(node.value)},
            container=data)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader._mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader._sequence)


def parse(text: str, source: str) -> tuple[Any, dict[int, _Marks]]:
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}
        loader.note_duplicates(node)
        return loader.construct_document(node), loader.positions
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = _pos(mark) if mark else (1, 1)
        what = "; ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ConfigError([Problem(source, line, column, "", f"not valid YAML: {what}")]) from None
    except yaml.reader.ReaderError as exc:
        before = text[:exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        raise ConfigError([Problem(source, line, column, "",
                                   f"not valid YAML: character #x{exc.character:04x} is not allowed in YAML")
                           ]) from None
    except RecursionError:
        raise ConfigError([Problem(source, 1, 1, "", "not valid YAML: nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()


# --- validating --------------------------------------------------------------------------------

FieldPath = tuple  # a field's path from the root: ("probes", 2, "interval")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _path(path: FieldPath) -> str:
    """`probes[2].interval`; a key that is not a plain name is quoted: `probes[2]['in terval']`."""
    out = ""
    for step in path:
        if isinstance(step, str) and _NAME.fullmatch(step):
            out += f".{step}" if out else step
        else:
            out += f"[{step}]" if isinstance(step, int) and not isinstance(step, bool) else f"[{quote(step)}]"
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    for python, word in ((bool, "true/false"), (int, "an integer"), (float, "a number"), (str, "text"),
                         (dict, "a mapping"), (list, "a list")):
        if isinstance(value, python):
            return word
    return type(value).__name__


def quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _show(value: Any) -> str:
    """A short rendering of a (non-secret) value for messages: its kind, and itself if a scalar."""
    if value is None or isinstance(value, (dict, list)) or not isinstance(value, (str, int, float)):
        return _kind(value)
    return f"{_kind(value)} {quote(value)}"


def _hint(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


MISSING = object()


class Reader:
    """Reads fields off the parsed document, collecting problems with their positions."""

    def __init__(self, root: Any, marks: dict[int, _Marks], source: str, base_dir: Path, *,
                 shape_only: bool = False) -> None:
        self.root, self.marks, self.source, self.base_dir = root, marks, source, base_dir
        self.problems: list[Problem] = []
        # shape_only: check the file without its environment (`config check --no-env`): a value that
        # needs an unset variable, or a secret file, is taken as given and not read.
        self.shape_only = shape_only
        self.missing_env: list[str] = []

    def _unset(self, name: str, path: FieldPath) -> None:
        if name not in self.missing_env:
            self.missing_env.append(name)
        if not self.shape_only:
            self.problem(path, f"environment variable {name} is not set (used as ${{{name}}})")

    # where things are

    def _where(self, path: FieldPath, *, key: bool) -> Pos:
        obj = self.root
        marks = self.marks.get(id(obj)) if isinstance(obj, (dict, list)) else None
        pos = marks.start if marks else (1, 1)
        for n, step in enumerate(path):
            marks = self.marks.get(id(obj)) if isinstance(obj, (dict, list)) else None
            if marks is None or step not in marks.entries:
                break
            key_pos, value_pos = marks.entries[step]
            pos = key_pos if key and n == len(path) - 1 else value_pos
            try:
                obj = obj[step]
            except (KeyError, IndexError, TypeError):
                break
        return pos

    def problem(self, path: FieldPath, message: str, *, key: bool = False) -> None:
        line, column = self._where(path, key=key)
        self.problems.append(Problem(self.source, line, column, _path(path), message))

    # shapes

    def mapping(self, value: Any, path: FieldPath, allowed: tuple[str, ...], *, noun: str = "key",
                free: str | None = None, reveal: bool = True) -> dict | None:
        """`value` if it is a mapping (problems for its unknown and repeated keys, except those
        starting with `free`), else None. Not `reveal`: a wrong value may be a secret, not shown."""
        if not isinstance(value, dict):
            got = _show(value) if reveal else _kind(value)
            self.problem(path, f"expected a mapping with {', '.join(allowed)}, got {got}")
            return None
        marks = self.marks.get(id(value))
        for key, (line, column) in marks.duplicates if marks else ():
            self.problems.append(Problem(self.source, line, column, _path((*path, key)),
                                         "written twice in this mapping (only the last one would count)"))
        for key in sorted(set(value) - set(allowed), key=str):
            if free and isinstance(key, str) and key.startswith(free):
                continue
            hint = _hint(key, allowed) if isinstance(key, str) else ""
            self.problem((*path, key), f"unknown {noun}{hint}; expected one of {', '.join(allowed)}", key=True)
        return value

    def items(self, parent: dict, path: FieldPath, key: str,
              allowed: tuple[str, ...]) -> Iterator[tuple[FieldPath, dict]]:
        """The mappings of the list `parent[key]` (absent or empty: none)."""
        value = parent.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.problem((*path, key), f"expected a list, got {_show(value)}")
            return
        for i, item in enumerate(value):
            if self.mapping(item, (*path, key, i), allowed) is not None:
                yield (*path, key, i), item

    def _given(self, item: dict, path: FieldPath, key: str, expected: str, default: Any) -> tuple[bool, Any]:
        """(True, value) when the key holds something; else (False, default), a problem if required."""
        if item.get(key) is not None:
            return True, item[key]
        if default is MISSING:
            self.problem((*path, key), f"required ({expected})")
            return False, None
        return False, default

    # scalars

    def text(self, item: dict, path: FieldPath, key: str, *, default: Any = MISSING, max_length: int = 100,
             multiline: bool = False) -> str | None:
        """A string, with ${NAME} replaced by the environment variable NAME."""
        given, value = self._given(item, path, key, "text", default)
        if not given:
            return value
        if not isinstance(value, str):
            self.problem((*path, key), f"expected text, got {_show(value)}")
            return None
        expanded = self.expand(value, (*path, key))
        if expanded is None:
            return None
        after = " (after replacing ${…})" if expanded != value else ""
        if _CONTROL.search(expanded.replace("\n", "").replace("\t", "") if multiline else expanded):
            self.problem((*path, key), f"contains control characters{after}")
        elif not expanded.strip() and default is MISSING:
            self.problem((*path, key), f"is empty{after}")
        elif len(expanded) > max_length:
            self.problem((*path, key), f"is {len(expanded)} characters long{after}; at most {max_length}")
        else:
            return expanded
        return None

    def expand(self, value: str, path: FieldPath) -> str | None:
        missing = [name for name in _VAR.findall(value) if name not in os.environ]
        for name in dict.fromkeys(missing):
            self._unset(name, path)
        return None if missing else _VAR.sub(lambda m: os.environ[m.group(1)], value)

    def translations(self, item: dict, path: FieldPath, key: str, languages: tuple[str, ...], *,
                     max_length: int = 100) -> dict[str, str] | None:
        """A mapping of language code → text (`names: {fr: Publication}`), each language one of
        `languages`, each text as `text` reads it; absent: {}."""
        given, value = self._given(item, path, key, "a mapping of language → text", {})
        if not given:
            return value
        if self.mapping(value, (*path, key), languages, noun="language") is None:
            return None
        found = {}
        for language in languages:
            if language in value:
                found[language] = self.text(value, (*path, key), language, max_length=max_length)
        return found

    def slug(self, item: dict, path: FieldPath, key: str, seen: set[str]) -> str | None:
        value = self.text(item, path, key, max_length=64)
        if value is None:
            return None
        if not _SLUG.match(value):
            self.problem((*path, key), f"{quote(value)} is not a valid name (1-64 of a-z, 0-9, '-', '_', "
                                       "starting with a letter or digit)")
            return None
        return self.unique(value, (*path, key), seen)

    def unique(self, value: str | None, path: FieldPath, seen: set[str]) -> str | None:
        if value is not None and value in seen:
            self.problem(path, f"{quote(value)} is declared twice")
            return None
        if value is not None:
            seen.add(value)
        return value

    def choice(self, item: dict, path: FieldPath, key: str, choices, *, default: Any = MISSING) -> str | None:
        given, value = self._given(item, path, key, f"one of {', '.join(choices)}", default)
        if not given:
            return value
        if not isinstance(value, str) or value not in choices:
            hint = _hint(value, choices) if isinstance(value, str) else ""
            shown = quote(value) if isinstance(value, str) else _show(value)
            self.problem((*path, key), f"{shown} is not one of {', '.join(choices)}{hint}")
            return None
        return value

    def reference(self, item: dict, path: FieldPath, key: str, known: set[str], what: str) -> str | None:
        given, value = self._given(item, path, key, f"the name of a {what} of this file", MISSING)
        if not given:
            return None
        if not isinstance(value, str):
            self.problem((*path, key), f"expected a {what} name, got {_show(value)}")
        elif value not in known:
            self.problem((*path, key), f"no {what} {quote(value)} in this file{_hint(value, known)}")
        else:
            return value
        return None

    def number(self, item: dict, path: FieldPath, key: str, *, low: float, high: float, default: Any = MISSING,
               integer: bool = True, unit: str = "") -> Any:
        expected = "an integer" if integer else "a number"
        given, value = self._given(item, path, key, expected, default)
        if not given:
            return value
        kinds = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            self.problem((*path, key), f"expected {expected}, got {_show(value)}")
            return None
        if not low <= value <= high:  # also refuses .nan
            self.problem((*path, key), f"{value}{unit} is outside {low}-{high}{unit}")
            return None
        return value

    def boolean(self, item: dict, path: FieldPath, key: str, *, default: bool) -> bool | None:
        given, value = self._given(item, path, key, "true or false", default)
        if given and not isinstance(value, bool):
            self.problem((*path, key), f"expected true or false, got {_show(value)}")
            return None
        return value

    def references(self, item: dict, path: FieldPath, key: str, known: set[str], what: str, *,
                   default: Any = MISSING, at_least: int = 0, declared: bool = True) -> list[str] | None:
        """A list of names of things declared in this file (or, not `declared`, of fixed choices)."""
        given, value = self._given(item, path, key, f"a list of {what} names", default)
        if not given:
            return value
        if not isinstance(value, list):
            self.problem((*path, key), f"expected a list of {what} names, got {_show(value)}")
            return None
        names: list[str] = []
        for j, name in enumerate(value):
            if not isinstance(name, str):
                self.problem((*path, key, j), f"expected a {what} name, got {_show(name)}")
            elif name not in known:
                self.problem((*path, key, j), f"no {what} {quote(name)} in this file{_hint(name, known)}"
                             if declared else f"{quote(name)} is not one of {', '.join(sorted(known))}"
                             f"{_hint(name, known)}")
            elif name in names:
                self.problem((*path, key, j), f"{what} {quote(name)} is listed twice")
            else:
                names.append(name)
        if len(value) < at_least:
            self.problem((*path, key), f"needs at least {at_least} {what}")
        return names if len(names) == len(value) else None

    # secrets

    def secret(self, item: dict, path: FieldPath, key: str, what: str, *, min_length: int = 1) -> str | None:
        """A secret given by reference: "${NAME}" or {file: PATH}. Its value is never shown."""
        where = (*path, key)
        forms = "\"${NAME}\" (an environment variable) or {file: PATH}"
        given, value = self._given(item, path, key, f"the {what}, as {forms}", MISSING)
        if not given:
            return None
        if isinstance(value, dict):
            if self.mapping(value, where, ("file",)) is None or set(value) - {"file"}:
                return None
            name = self.text(value, where, "file", max_length=4096)
            return None if name is None else self._secret_checked(self._read_file(name, (*where, "file")),
                                                                  (*where, "file"), f"file {name}", min_length)
        if not isinstance(value, str):
            self.problem(where, f"expected {forms}, got {_kind(value)}")
            return None
        reference = _VAR.fullmatch(value)
        if reference is None:
            self.problem(where, f"the {what} must not be written in the file: put it in an environment variable "
                                "and write \"${NAME}\", or in a file and write {file: PATH}")
            return None
        name = reference.group(1)
        if name not in os.environ:
            self._unset(name, where)
            return None
        return self._secret_checked(os.environ[name], where, f"${{{name}}}", min_length)

    def _read_file(self, name: str, where: FieldPath) -> str | None:
        path = Path(name) if Path(name).is_absolute() else self.base_dir / name
        if self.shape_only:
            return None  # a secret file is the deployment's, not the file's shape
        try:
            if not path.exists():
                self.problem(where, f"{path}: no such file")
                return None
            if not path.is_file():
                self.problem(where, f"{path}: not a regular file")
                return None
            with path.open("rb") as handle:
                raw = handle.read(MAX_SECRET_BYTES + 1)
        except (OSError, ValueError) as exc:
            self.problem(where, f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})")
            return None
        if len(raw) > MAX_SECRET_BYTES:
            self.problem(where, f"{path}: larger than {MAX_SECRET_BYTES // 1024} KiB, not a secret")
            return None
        try:
            content = raw.decode()
        except UnicodeDecodeError:
            self.problem(where, f"{path}: not UTF-8 text")
            return None
        # Editors and `echo` end files with a newline; one is not part of the secret.
        return content[:-2] if content.endswith("\r\n") else content[:-1] if content.endswith("\n") else content

    def _secret_checked(self, value: str | None, where: FieldPath, origin: str, min_length: int) -> str | None:
        if value is None:
            return None
        if value == "":
            self.problem(where, f"the value of {origin} is empty")
        elif _CONTROL_OR_SPACE.search(value):
            self.problem(where, f"the value of {origin} contains white space or control characters "
                                "(only one trailing newline of a file is dropped)")
        elif len(value) < min_length:
            self.problem(where, f"the value of {origin} is shorter than {min_length} characters")
        else:
            return value
        return None
