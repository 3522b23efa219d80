"""Model variants for tests that prove the models, not the YAML, are the source of the CRDs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, create_model
from pydantic.fields import FieldInfo


def with_description(model: type[BaseModel], field: str, description: str) -> type[BaseModel]:
    """A subclass of ``model`` whose ``field`` has another description, all else the same."""
    original = model.model_fields[field]
    info = FieldInfo.merge_field_infos(original, description=description)
    fields: dict[str, Any] = {field: (original.annotation, info)}
    return create_model(model.__name__, __base__=model, **fields)
