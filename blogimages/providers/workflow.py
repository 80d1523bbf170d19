"""The part of a provider that runs ComfyUI workflow templates, shared by ComfyUI and RunPod.

Both build the same graph from the same templates, so a style looks the same wherever it
runs; they differ only in where the graph is sent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured

from ..comfyui.loras import StackedLora
from ..comfyui.workflows import Workflow, adapt, choose, graph_for, load_workflows
from ..contract import GenerationRequest, ModelChoice, PreparedRequest, seed_for
from .base import BaseProvider

# Seeds stay below 2**53 so a graph opened in JavaScript (ComfyUI's page, RunPod's console) keeps them exact.
SEED_LIMIT = 2**53


class WorkflowProvider(BaseProvider):
    """Needs the options ``workflow`` (the default), ``workflows`` and ``filename_prefix``."""

    runs_comfyui: ClassVar[bool] = True

    def __init__(self, alias: str, **options: Any):
        super().__init__(alias, **options)
        where = f"BLOGIMAGES_PROVIDERS[{alias!r}]"
        self.workflows = load_workflows(self.options["workflows"], where=where)
        if self.options["workflow"] not in self.workflows:
            raise ImproperlyConfigured(
                f"{where}: workflow {self.options['workflow']!r} is not defined; choose one of "
                f"{', '.join(sorted(self.workflows))}."
            )

    def choose_model(self, request: GenerationRequest) -> ModelChoice:
        """A workflow name (``"sdxl"``), a model file for the default workflow, or ``"sdxl:file"``.

        Any name that is not a workflow is taken as a model file: ComfyUI loads what it is told.
        """
        workflow, model_file = choose(
            self.workflows, request, self.options["workflow"], f"The {self.label} provider {self.alias!r}"
        )
        return ModelChoice(workflow.name, file=model_file)

    def adjust(self, request: GenerationRequest, choice: ModelChoice) -> tuple[GenerationRequest, list[str]]:
        return adapt(self.workflows[choice.name], request)

    def build_graph(self, request: PreparedRequest) -> tuple[Workflow, dict[str, dict], list[StackedLora], int]:
        """The workflow, the graph to send, its LoRA stack and the seed written into it."""
        workflow = self.workflows[request.choice.name]
        # ComfyUI answers an identical graph from its cache without running anything, so
        # an unpinned seed must change every time.
        seed = seed_for(request, SEED_LIMIT)
        graph, stack = graph_for(
            workflow,
            request,
            model_file=request.choice.file,
            seed=seed,
            filename_prefix=self.options["filename_prefix"],
        )
        return workflow, graph, stack, seed

    def models(self) -> list[str]:
        return sorted(self.workflows)
