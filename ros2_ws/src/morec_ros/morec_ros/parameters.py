"""Node parameters: declared from a dataclass, read back, and checked (no ONNX Runtime import, so the sim
node uses it too).

declare_params(node, Params) declares every field of a parameters dataclass as a node parameter, with the
field's default and description, and returns Params built from the values the node was given, so that
the dataclass's own __post_init__ checks them. A field whose default is itself a dataclass (a core
config such as LoopConfig) contributes that dataclass's fields, under their own names.

A field's description is the string literal right after it (an attribute docstring), else the comment
ending its line: the rule tyro applies to the `morec` CLI's dataclasses, so the core configs' comments
describe their ROS parameters too.
"""

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
from pathlib import Path

import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.parameter import Parameter


def declare(node, name, default, description):
    """Declare one parameter with its description and return its value. A float parameter takes a whole number
    too (`stale_periods: 50` in a YAML file or on the command line), which ROS alone refuses as an integer."""
    given = node._parameter_overrides.get(name)  # rclpy keeps the overrides there until they are declared
    if isinstance(default, float) and given is not None and given.type_ == Parameter.Type.INTEGER:
        node._parameter_overrides[name] = Parameter(name, value=float(given.value))
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


def declare_params(node, cls, defaults=None):
    """Declare the fields of dataclass `cls` as parameters of `node` and return `cls` built from their values.

    `defaults` ({name: value}) replace the dataclass's defaults where the node knows better at start-up
    (a bundle's calibration). A value the dataclass rejects (ValueError or TypeError in __post_init__)
    raises ValueError naming the parameters whose values it rejected.
    """
    given = {name: (defaults or {}).get(name, default) for name, default, _ in parameter_fields(cls)}
    values = {name: _as_default(declare(node, name, given[name], doc), given[name])
              for name, _, doc in parameter_fields(cls)}
    try:
        return _build(cls, values)
    except (ValueError, TypeError) as e:
        changed = [name for name in values if values[name] != given[name]]
        culprits = [name for name in changed if not _builds(cls, {**given, name: values[name]})] or changed
        named = ', '.join(f'{name}={values[name]!r}' for name in culprits)
        raise ValueError(f"parameter{'s' * (len(culprits) > 1)} {named}: {e}") from None


def params_from_files(cls, node_name: str, files, overrides: dict | None = None):
    """`cls` built from parameter files as a node named `node_name` would read them (each file's `/**` and
    `node_name` sections, later files winning, then `overrides`); keys `cls` lacks are left to the caller."""
    values = {}
    for path in files:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        for section in ('/**', node_name):
            values.update(((doc.get(section) or {}).get('ros__parameters')) or {})
    values.update(overrides or {})
    given = {name: _as_default(values.get(name, default), default) for name, default, _ in parameter_fields(cls)}
    return _build(cls, given)


@functools.cache
def parameter_fields(cls) -> tuple[tuple[str, object, str], ...]:
    """(name, default, description) of every parameter of dataclass `cls`, nested dataclasses' fields flattened."""
    docs = field_docs(cls, frozenset(f.name for f in dataclasses.fields(cls)))
    found = []
    for f in dataclasses.fields(cls):
        default = _default(f)
        if dataclasses.is_dataclass(default):
            found += parameter_fields(type(default))
        elif default is None:
            raise TypeError(f'{cls.__name__}.{f.name}: a parameter needs a default that is not None')
        else:
            found.append((f.name, default, docs.get(f.name, f'{cls.__name__}.{f.name} ({cls.__module__})')))
    names = [name for name, _, _ in found]
    if len(set(names)) != len(names):
        raise TypeError(f'{cls.__name__}: parameter names must be unique, got {names}')
    return tuple(found)


@functools.cache
def field_docs(cls, names: frozenset) -> dict[str, str]:
    """The descriptions of the fields `names` of `cls` (any class: a pydantic model's too), looked up along
    its bases; a subclass's own description wins."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if not names & set(vars(klass).get('__annotations__', {})):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source shipped: the fallback descriptions apply
            continue
        comments = {tok.start[0]: tok.string.lstrip('#').strip()
                    for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
        body = ast.parse(source).body[0].body
        for stmt, after in zip(body, body[1:] + [None]):
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            is_string = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            string = after.value.value if is_string else None
            if isinstance(string, str):
                docs[stmt.target.id] = ' '.join(inspect.cleandoc(string).split())
            elif stmt.end_lineno in comments:
                docs[stmt.target.id] = comments[stmt.end_lineno]
    return {name: doc for name, doc in docs.items() if name in names}


def reject_undeclared_parameters(node) -> None:
    """A parameter given to the node (a params file or -p) that it does not declare is a typo, not a no-op:
    rclpy ignores such overrides silently, so a misspelt key would run with the default."""
    unknown = sorted(set(node._parameter_overrides) - set(node._parameters))
    if unknown:
        valid = sorted(set(node._parameters) - {'start_type_description_service'})
        raise ValueError(f"{node.get_name()} has no parameter{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                         f"its parameters: {', '.join(valid)}")


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _as_default(value, default):
    """ROS returns arrays as lists or array.array: give them the default's sequence type."""
    return type(default)(value) if isinstance(default, (list, tuple)) else value


def _build(cls, values: dict):
    kwargs = {}
    for f in dataclasses.fields(cls):
        default = _default(f)
        kwargs[f.name] = _build(type(default), values) if dataclasses.is_dataclass(default) else values[f.name]
    return cls(**kwargs)


def _builds(cls, values: dict) -> bool:
    try:
        _build(cls, values)
    except (ValueError, TypeError):
        return False
    return True
