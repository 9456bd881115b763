"""``@app.task(pydantic=True)``: Celery 5.5's pydantic validation of a task's arguments.

An argument whose parameter is annotated with a pydantic model (or ``Optional`` of one) is
validated with ``Model.model_validate(value, strict=pydantic_strict, context=...)`` just
before the task runs, so callers send plain dicts (``task.delay({"value": 1})``); the
validation context holds ``pydantic_context`` plus ``celery_app`` and ``celery_task_name``.
A returned model that is an instance of the return annotation is dumped with
``model_dump(mode="json", **pydantic_dump_kwargs)``, so ``get()`` gives a dict, as in
Celery. Conveyor's own typed conversion leaves those parameters and that return to it.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .current import current_app
from .exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = ["with_pydantic"]


def _model_of(annotation: Any, base: type) -> type | None:
    """The model class an annotation names, directly or as ``Optional[Model]``."""
    if isinstance(annotation, type) and issubclass(annotation, base):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _model_of(members[0], base)
    return None


def with_pydantic(
    fun: Callable[..., Any], app: Conveyor | None, name: str, options: dict[str, Any]
) -> Callable[..., Any]:
    """``fun`` itself, or with ``pydantic=True`` in ``options`` the validating wrapper;
    takes the pydantic options out of ``options`` either way."""
    enabled = bool(options.pop("pydantic", False))
    strict = bool(options.pop("pydantic_strict", False))
    context: Mapping[str, Any] = options.pop("pydantic_context", None) or {}
    dump_kwargs = {"mode": "json", **(options.pop("pydantic_dump_kwargs", None) or {})}
    if not enabled:
        return fun
    try:
        from pydantic import BaseModel
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{name}: pydantic=True needs pydantic installed (pip install pydantic)"
        ) from exc
    try:
        hints = typing.get_type_hints(fun)
    except Exception:  # a name the module cannot resolve: the annotations that are classes
        hints = {k: v for k, v in inspect.get_annotations(fun).items() if not isinstance(v, str)}
    signature = inspect.signature(fun)
    models = {
        param: model
        for param in signature.parameters
        if (model := _model_of(hints.get(param), BaseModel)) is not None
    }
    returns = _model_of(hints.get("return"), BaseModel)

    @functools.wraps(fun)
    def validated(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        if models:
            extra = {**context, "celery_app": app or current_app(), "celery_task_name": name}
            for param, model in models.items():
                value = bound.arguments.get(param)
                if param in bound.arguments and value is not None:
                    bound.arguments[param] = model.model_validate(  # type: ignore[attr-defined]
                        value, strict=strict, context=extra
                    )
        result = fun(*bound.args, **bound.kwargs)
        if returns is not None and isinstance(result, returns):
            return result.model_dump(**dump_kwargs)  # type: ignore[attr-defined]
        return result

    # The models are this wrapper's to validate, and the dumped return is a dict.
    validated.__annotations__ = {
        key: Any if key in models or (key == "return" and returns is not None) else hint
        for key, hint in hints.items()
    }
    return validated
