"""Encoding messages and values, and typed decoding from a task's annotations.

JSON (msgspec) carries dataclasses, attrs classes, pydantic models, datetimes, UUIDs,
Decimals, Enums, bytes, tuples and sets. On the worker, each argument is converted to the
type its parameter is annotated with, so a dataclass sent arrives as that dataclass.

A value no annotation types (an unannotated parameter or return, ``Any``, ``dict[str,
Any]``, custom-state meta) keeps the types Celery's JSON serializer keeps: bytes,
datetime, date, time, UUID and Decimal travel tagged as kombu tags them
(``{"__type__": "datetime", "__value__": "..."}``) and arrive as themselves. Plain JSON
values are looked at once by type and never copied. Pickle is used only when the app opts
in.
"""

from __future__ import annotations

import base64
import functools
import inspect
import math
import pickle
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from types import FunctionType, LambdaType, MethodType
from typing import Any
from uuid import UUID

import msgspec

from .exceptions import DecodeError, EncodeError, PayloadTooLarge
from .message import Message

__all__ = [
    "ArgumentSpec",
    "Untyped",
    "check_return",
    "convert",
    "decode_message",
    "decode_value",
    "encode_hook",
    "encode_message",
    "encode_value",
    "explain_result",
    "explain_unencodable",
    "pickle_arguments",
    "tag_result",
    "tag_values",
    "unpickle_arguments",
    "untag_if_marked",
    "untag_values",
]

_SKIP_TYPES: frozenset[Any] = frozenset({Any, object, inspect.Parameter.empty})


def encode_hook(obj: Any) -> Any:
    """msgspec's hook for values it does not know: pydantic models; a TypeError otherwise."""
    dump = getattr(obj, "model_dump", None)
    if dump is not None and callable(dump):
        return dump(mode="json")
    raise TypeError(f"cannot encode {type(obj).__module__}.{type(obj).__qualname__}")


def _dec_hook(tp: type, obj: Any) -> Any:
    if tp is object:  # ``dict[str, object]``: any JSON value, as it is
        return obj
    validate = getattr(tp, "model_validate", None)
    if validate is not None:
        return validate(obj)
    raise NotImplementedError(f"no decoder for {tp!r}")


_encoder = msgspec.json.Encoder(enc_hook=encode_hook)
_message_decoder = msgspec.json.Decoder(Message)
_value_decoder = msgspec.json.Decoder()


# -- Celery's tagged JSON types ----------------------------------------------------------

_PLAIN: frozenset[type] = frozenset({int, str, float, bool, type(None)})
_TAG_KEYS = frozenset({"__type__", "__value__"})
_MARKER = b'"__type__"'


def _tag_bytes(value: bytes) -> dict[str, Any]:
    try:
        return {"__type__": "bytes", "__value__": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"__type__": "base64", "__value__": base64.b64encode(value).decode("ascii")}


_TAGGERS: tuple[tuple[type, Callable[[Any], dict[str, Any]]], ...] = (
    # datetime before date: a datetime is a date too
    (datetime, lambda v: {"__type__": "datetime", "__value__": v.isoformat()}),
    (date, lambda v: {"__type__": "date", "__value__": v.isoformat()}),
    (time, lambda v: {"__type__": "time", "__value__": v.isoformat()}),
    (Decimal, lambda v: {"__type__": "decimal", "__value__": str(v)}),
    (UUID, lambda v: {"__type__": "uuid", "__value__": {"hex": v.hex, "version": v.version}}),
    (bytes, _tag_bytes),
)
_TAGGED_TYPES = tuple(kind for kind, _ in _TAGGERS)

_UNTAGGERS: dict[str, Callable[[Any], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": lambda v: datetime.fromisoformat(v).date(),
    "time": time.fromisoformat,
    "decimal": Decimal,
    "uuid": lambda v: UUID(**v),
    "bytes": lambda v: v.encode("utf-8"),
    "base64": lambda v: base64.b64decode(v.encode("ascii")),
}


def _needs_tags(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return False
    if isinstance(value, _TAGGED_TYPES):
        return True
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list | tuple | set | frozenset):
        return False  # dataclasses, models, Enums: msgspec encodes them as they are
    if set(map(type, value)) <= _PLAIN:  # a C-speed look at a list of plain values
        return False
    return any(_needs_tags(item) for item in value)


def _tag(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    for kind, tagger in _TAGGERS:
        if isinstance(value, kind):
            return tagger(value)
    if isinstance(value, dict):
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_tag(item) for item in value]
    return value


def tag_values(value: Any) -> Any:
    """``value`` with bytes, datetimes, dates, times, UUIDs and Decimals tagged as
    Celery's JSON tags them; the value itself when it holds none (no copy)."""
    return _tag(value) if _needs_tags(value) else value


def untag_values(value: Any) -> Any:
    """The values ``tag_values`` tagged, back as themselves (other dicts stay dicts)."""
    if isinstance(value, dict):
        if value.keys() == _TAG_KEYS:
            untag = _UNTAGGERS.get(value["__type__"])
            if untag is not None:
                try:
                    return untag(value["__value__"])
                except (TypeError, ValueError, AttributeError):
                    return value
        return {key: untag_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [untag_values(item) for item in value]
    return value


def tag_result(value: Any, spec: ArgumentSpec | None) -> Any:
    """A return value as stored: tagged unless ``spec``'s return annotation types it."""
    return value if spec is not None and not spec.untyped_return else tag_values(value)


def untag_if_marked(data: bytes, value: Any) -> Any:
    """``untag_values(value)`` where the encoded ``data`` holds a tag: plain data is not walked."""
    return untag_values(value) if _MARKER in data else value


def explain_unencodable(value: Any) -> str:
    """Say what to pass instead of a value that cannot be sent."""
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if hasattr(value, "pk") and hasattr(value, "_meta"):
        return (
            f"a Django model instance ({kind}) cannot be sent: pass its primary key "
            f"(obj.pk = {value.pk!r}) and fetch the object inside the task"
        )
    if hasattr(value, "pk"):
        return f"{kind} cannot be sent: pass its id (obj.pk = {value.pk!r}) and load it in the task"
    if isinstance(value, FunctionType | LambdaType | MethodType) or callable(value):
        return (
            f"a callable ({kind}) cannot be sent: pass the data it needs, or a task "
            "signature (other_task.s(...)) to run afterwards"
        )
    return (
        f"{kind} cannot be sent: pass JSON values (str, int, float, bool, None, list, "
        "dict), a dataclass, an attrs class, a pydantic model, datetime, UUID, Decimal, "
        "Enum or bytes; or opt in to pickle with accept_content=['json', 'pickle']"
    )


def _find_unencodable(value: Any, path: str) -> tuple[str, Any] | None:
    try:
        _encoder.encode(value)
        return None
    except (TypeError, ValueError, OverflowError):
        pass
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _find_unencodable(item, f"{path}[{key!r}]")
            if found:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            found = _find_unencodable(item, f"{path}[{i}]")
            if found:
                return found
    return path, value


def encode_message(
    message: Message,
    limit: int | None = None,
    param_names: Sequence[str] = (),
    spec: ArgumentSpec | None = None,
) -> bytes:
    """Encode a message, naming the argument that cannot be encoded, and enforce the size limit.

    Arguments that no annotation of ``spec`` types (all of them without a spec) and the
    signatures of what follows it are tagged (``tag_values``).
    """
    if not _plain_message(message):
        message = _tag_message(message, spec)
    try:
        body = _encoder.encode(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _argument_error(message, param_names, exc) from None
    if limit is not None and len(body) > limit:
        raise PayloadTooLarge(
            f"task {message.task!r}: the message is {len(body):,} bytes, over the limit of "
            f"{limit:,} (max_payload_size). Store large data elsewhere (a file, object "
            "storage, the database) and pass its key or id."
        )
    return body


def _argument_error(message: Message, names: Sequence[str], exc: Exception) -> EncodeError:
    for i, arg in enumerate(message.args):
        found = _find_unencodable(arg, "")
        if found:
            label = names[i] if i < len(names) else f"#{i}"
            return EncodeError(
                f"task {message.task!r}: argument {label!r}{found[0]}: "
                f"{explain_unencodable(found[1])}"
            )
    for key, arg in message.kwargs.items():
        found = _find_unencodable(arg, "")
        if found:
            return EncodeError(
                f"task {message.task!r}: argument {key!r}{found[0]}: "
                f"{explain_unencodable(found[1])}"
            )
    for field in ("headers", "chain", "callbacks", "errbacks", "chord"):
        found = _find_unencodable(getattr(message, field), field)
        if found:
            return EncodeError(
                f"task {message.task!r}: {found[0]}: {explain_unencodable(found[1])}"
            )
    return EncodeError(f"task {message.task!r}: cannot encode the message: {exc}")


def _plain_message(message: Message) -> bool:
    """Plain arguments and nothing after it: the common send, which needs no tags."""
    plain = _PLAIN
    for arg in message.args:
        if type(arg) not in plain:
            return False
    if message.kwargs:
        for arg in message.kwargs.values():
            if type(arg) not in plain:
                return False
    return not (message.chain or message.callbacks or message.errbacks or message.chord)


def _tag_message(message: Message, spec: ArgumentSpec | None) -> Message:
    args, kwargs = message.args, message.kwargs
    changes: dict[str, Any] = {}
    if args or kwargs:
        untyped = spec.untyped if spec is not None else None
        new_args = [
            tag_values(arg) if untyped is None or untyped.position(i) else arg
            for i, arg in enumerate(args)
        ]
        if any(new is not old for new, old in zip(new_args, args, strict=True)):
            changes["args"] = new_args
        new_kwargs = {
            key: tag_values(value) if untyped is None or untyped.name(key) else value
            for key, value in kwargs.items()
        }
        if any(new_kwargs[key] is not value for key, value in kwargs.items()):
            changes["kwargs"] = new_kwargs
    for field in ("chain", "callbacks", "errbacks", "chord"):
        value = getattr(message, field)
        if value:
            tagged = tag_values(value)
            if tagged is not value:
                changes[field] = tagged
    return message.replace(**changes) if changes else message


def decode_message(body: bytes) -> Message:
    """Decode a message; tagged arguments come back as the values they were."""
    try:
        message = _message_decoder.decode(body)
    except msgspec.DecodeError as exc:
        preview = bytes(body[:80])
        raise DecodeError(f"malformed message ({exc}); body starts {preview!r}") from None
    if _MARKER in body and (message.args or message.kwargs):
        message = message.replace(
            args=untag_values(message.args), kwargs=untag_values(message.kwargs)
        )
    return message


def encode_value(value: Any) -> bytes:
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, OverflowError):
        found = _find_unencodable(value, "")
        raise EncodeError(
            f"value{found[0] if found else ''}: {explain_unencodable(found[1] if found else value)}"
        ) from None


def decode_value(data: bytes) -> Any:
    try:
        return _value_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"stored value is not valid JSON: {exc}") from None


def convert(value: Any, tp: Any) -> Any:
    """Convert JSON values to ``tp`` (dataclass, attrs, pydantic, datetime, ...)."""
    if tp in _SKIP_TYPES:
        return value
    return msgspec.convert(value, tp, dec_hook=_dec_hook)


def pickle_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    return pickle.dumps((tuple(args), dict(kwargs)), protocol=pickle.HIGHEST_PROTOCOL)


def unpickle_arguments(payload: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = pickle.loads(payload)
    return tuple(args), dict(kwargs)


@dataclass(frozen=True)
class ArgumentSpec:
    """A task's parameters and annotations: checks calls and converts received arguments."""

    signature: inspect.Signature
    positional: tuple[tuple[str, Any], ...]
    var_positional: Any
    by_name: Mapping[str, Any]
    var_keyword: Any
    returns: Any

    @classmethod
    def from_callable(cls, fn: Callable[..., Any]) -> ArgumentSpec:
        signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: fall back to no conversion
            hints = {}
        positional: list[tuple[str, Any]] = []
        by_name: dict[str, Any] = {}
        var_positional: Any = None
        var_keyword: Any = None
        for name, param in signature.parameters.items():
            tp = hints.get(name, Any)
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                positional.append((name, tp))
                if param.kind is param.POSITIONAL_OR_KEYWORD:
                    by_name[name] = tp
            elif param.kind is param.VAR_POSITIONAL:
                var_positional = tp
            elif param.kind is param.KEYWORD_ONLY:
                by_name[name] = tp
            else:
                var_keyword = tp
        returns = hints.get("return", Any)
        return cls(signature, tuple(positional), var_positional, by_name, var_keyword, returns)

    @functools.cached_property
    def param_names(self) -> list[str]:
        return [name for name, _ in self.positional]

    @functools.cached_property
    def untyped(self) -> Untyped:
        """The parameters whose values travel tagged (see ``tag_values``)."""
        return Untyped(
            tuple(_loose(tp) for _, tp in self.positional),
            _loose(self.var_positional),
            {name: _loose(tp) for name, tp in self.by_name.items()},
            _loose(self.var_keyword),
        )

    @functools.cached_property
    def untyped_return(self) -> bool:
        """Whether the return value travels tagged: no annotation types it."""
        return _loose(self.returns)

    def check(self, task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError, naming the task, when the call does not fit the signature."""
        if not kwargs and self._positional_range[0] <= len(args) <= self._positional_range[1]:
            return  # positional arguments only, as many as the signature takes
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{task_name}{self.signature}: {exc}") from None

    @functools.cached_property
    def _positional_range(self) -> tuple[float, float]:
        """How many positional arguments alone make a valid call: (-1, -1) when none do
        without keywords (a keyword-only parameter has no default)."""
        low, high = 0, 0.0
        for param in self.signature.parameters.values():
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                high += 1
                if param.default is param.empty:
                    low += 1
            elif param.kind is param.VAR_POSITIONAL:
                high = math.inf
            elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
                return (-1, -1)
        return (low, high)

    def convert(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Convert received JSON arguments to the annotated types; TypeError names the argument."""
        out_args: list[Any] = []
        for i, value in enumerate(args):
            if i < len(self.positional):
                name, tp = self.positional[i]
            else:
                name, tp = f"*args[{i - len(self.positional)}]", self.var_positional
            out_args.append(self._convert_one(name, value, tp))
        out_kwargs: dict[str, Any] = {}
        for name, value in kwargs.items():
            tp = self.by_name.get(name, self.var_keyword)
            out_kwargs[name] = self._convert_one(name, value, tp)
        return tuple(out_args), out_kwargs

    @staticmethod
    def _convert_one(name: str, value: Any, tp: Any) -> Any:
        if tp is None or tp in _SKIP_TYPES:
            return value
        try:
            return convert(value, tp)
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            try:  # tagged by a sender that did not know the annotation: its plain JSON form
                return convert(msgspec.to_builtins(value, enc_hook=encode_hook), tp)
            except (msgspec.ValidationError, TypeError, ValueError):
                pass
            raise TypeError(f"argument {name!r}: expected {_type_name(tp)}: {exc}") from None


@dataclass(frozen=True)
class Untyped:
    """Which parameters no annotation types (unannotated, ``Any``, ``dict[str, Any]``...):
    by position, then ``*args``; by name, then ``**kwargs``."""

    positions: tuple[bool, ...]
    rest: bool
    names: Mapping[str, bool]
    more: bool

    def position(self, index: int) -> bool:
        return self.positions[index] if index < len(self.positions) else self.rest

    def name(self, key: str) -> bool:
        return self.names.get(key, self.more)


def _loose(tp: Any) -> bool:
    """Whether ``tp`` leaves some value untyped: it is missing, ``Any`` or ``object``, or
    holds one of them (``list[Any]``, ``dict[str, Any]``, ``Optional[Any]``)."""
    if tp is None or tp is Any or tp is object or tp is inspect.Parameter.empty:
        return True
    return any(_loose(arg) for arg in typing.get_args(tp))


_PLAIN_RETURNS: dict[Any, tuple[type, ...]] = {
    type(None): (type(None),),
    None: (type(None),),
    str: (str,),
    int: (int,),
    bool: (bool,),
    float: (float, int),
}


def check_return(task_name: str, value: Any, tp: Any) -> None:
    """Raise EncodeError, naming the task and the types, when a return value cannot be
    stored or would not read back as the task's return annotation."""
    plain = _PLAIN_RETURNS.get(tp)
    if (plain is not None and type(value) in plain) or tp in _SKIP_TYPES:
        return  # an unannotated value is checked when its record is encoded
    try:
        data = encode_value(value)
    except EncodeError as exc:
        raise unstorable_result(task_name, exc) from None
    try:
        convert(_value_decoder.decode(data), tp)
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise EncodeError(
            f"{task_name}: returned {type(value).__qualname__}, which does not fit its "
            f"return annotation {_type_name(tp)}: {exc}"
        ) from None


def unstorable_result(task_name: str, error: BaseException | str) -> EncodeError:
    return EncodeError(f"{task_name}: its return value cannot be stored: {error}")


def explain_result(task_name: str, value: Any) -> EncodeError:
    """The EncodeError for a return value whose record could not be encoded."""
    try:
        encode_value(value)
    except EncodeError as exc:
        return unstorable_result(task_name, exc)
    return unstorable_result(task_name, explain_unencodable(value))


def _type_name(tp: Any) -> str:
    return tp.__qualname__ if isinstance(tp, type) else repr(tp)
