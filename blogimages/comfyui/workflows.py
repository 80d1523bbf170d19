"""Workflow templates in ComfyUI's API format, and the declared mapping that fills them.

A workflow is a graph exported from ComfyUI with "Save (API Format)" plus a mapping that
says which node input receives each parameter, by node title (``_meta.title``) or id::

    {
      "label": "FLUX.1-dev",
      "graph": "/srv/comfy/flux_api.json",          # or the graph itself, inline
      "parameters": {
        "prompt": {"node": "Positive prompt", "input": "text"},
        "seed": {"node": "Sampler", "input": "seed"},
        "guidance": {"node": "Flux guidance", "input": "guidance"},
        ...
      },
      "output": "Save image",
      "lora": {"model": {"node": "Load diffusion model", "output": 0},
               "clip": {"node": "Load text encoders", "output": 0}},
      "size_multiple": 16
    }

A ``batch_size`` parameter (the shipped workflows map it to their empty latent's
``batch_size``) lets the ComfyUI provider make a section's N candidates as one prompt with
a batch of N, one model pass; a workflow without it makes them as N prompts.

Python never names a node id: operators add their own workflows in the provider's
``workflows`` option with the same shape. The graph's own values are the defaults; a
parameter the request does not set leaves them alone. The mapping is checked locally
when the provider is built and against each server's ``/object_info`` before first use.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..contract import GenerationRequest, snapped_size
from ..exceptions import PermanentProviderError
from .loras import StackedLora, build_stack, insert_chain

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "workflows"
#: Parameters every workflow must map: without them each image would be the same.
REQUIRED = ("prompt", "seed")
#: ``request.extra`` keys that steer the provider rather than fill a workflow input.
STEERING = frozenset({"workflow", "character_loras", "unparsed"})


@dataclass(frozen=True)
class Binding:
    node: str  # resolved node id
    input: str


@dataclass
class Workflow:
    name: str
    label: str
    graph: dict[str, dict]
    parameters: dict[str, list[Binding]]
    output: str
    lora_model: tuple[str, int] | None = None
    lora_clip: tuple[str, int] | None = None
    size_multiple: int = 8
    notes: list[str] = field(default_factory=list)

    # --- loading -----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any], *, where: str = "") -> Workflow:
        """Build and check a workflow; every mistake is an ImproperlyConfigured naming the spot."""
        where = where or f"ComfyUI workflow {name!r}"
        if not isinstance(config, dict):
            raise ImproperlyConfigured(f"{where}: expected a dict with 'graph' and 'parameters', got {config!r}.")
        unknown = set(config) - {"label", "graph", "parameters", "output", "lora", "size_multiple", "notes"}
        if unknown:
            raise ImproperlyConfigured(f"{where}: unknown key(s) {', '.join(sorted(unknown))}.")
        graph = _load_graph(config.get("graph"), where)
        resolve = _Resolver(graph, where)
        parameters: dict[str, list[Binding]] = {}
        for param, spec in (config.get("parameters") or {}).items():
            specs = spec if isinstance(spec, list) else [spec]
            bindings = []
            for item in specs:
                if not isinstance(item, dict) or not item.get("node") or not item.get("input"):
                    raise ImproperlyConfigured(
                        f"{where}: parameter {param!r} must be {{'node': <title or id>, 'input': <input name>}} "
                        f"(or a list of those), not {item!r}."
                    )
                bindings.append(Binding(resolve(item["node"], f"parameter {param!r}"), str(item["input"])))
            parameters[param] = bindings
        for param in REQUIRED:
            if param not in parameters:
                raise ImproperlyConfigured(
                    f"{where}: the mapping has no {param!r} parameter; add "
                    f'"{param}": {{"node": <title or id>, "input": <input name>}}.'
                )
        output_spec = config.get("output")
        if isinstance(output_spec, dict):
            output_spec = output_spec.get("node")
        if not output_spec:
            raise ImproperlyConfigured(
                f'{where}: name the node whose images are the result, e.g. "output": "Save image".'
            )
        lora = config.get("lora") or {}
        return cls(
            name=name,
            label=str(config.get("label") or name),
            graph=graph,
            parameters=parameters,
            output=resolve(output_spec, "output"),
            lora_model=_source(resolve, lora.get("model"), "lora.model") if lora.get("model") else None,
            lora_clip=_source(resolve, lora.get("clip"), "lora.clip") if lora.get("clip") else None,
            size_multiple=int(config.get("size_multiple") or 8),
            notes=list(config.get("notes") or []),
        )

    # --- filling in ------------------------------------------------------------------------------

    def build(self, values: dict[str, Any], loras: list[StackedLora] = ()) -> dict[str, dict]:
        """A fresh graph with ``values`` written into the mapped inputs and the LoRA chain inserted."""
        graph = copy.deepcopy(self.graph)
        for param, value in values.items():
            for binding in self.parameters.get(param, ()):
                graph[binding.node].setdefault("inputs", {})[binding.input] = value
        if loras:
            if self.lora_model is None:
                raise PermanentProviderError(
                    f'Workflow {self.name!r} has no LoRA insertion point ("lora" in its mapping), '
                    f"so the LoRAs {', '.join(lora.name for lora in loras)} cannot be applied."
                )
            insert_chain(graph, list(loras), self.lora_model, self.lora_clip)
        return graph

    def title(self, node_id: str) -> str:
        node = self.graph.get(node_id, {})
        return (node.get("_meta") or {}).get("title") or node.get("class_type", "?")

    def describe(self, node_id: str) -> str:
        node = self.graph.get(node_id, {})
        title = (node.get("_meta") or {}).get("title")
        class_type = node.get("class_type", "?")
        return (
            f"node {node_id} \u201c{title}\u201d ({class_type})"
            if title and title != class_type
            else (f"node {node_id} ({class_type})")
        )

    # --- checking against a server --------------------------------------------------------------

    def check(self, object_info: dict[str, Any], server: str, *, with_loras: bool) -> None:
        """Raise PermanentProviderError naming the first node or input the server does not know."""
        where = f"Workflow {self.name!r} does not fit ComfyUI at {server}"
        for node_id, node in self.graph.items():
            class_type = node.get("class_type")
            if class_type not in object_info:
                raise PermanentProviderError(
                    f"{where}: {self.describe(node_id)} needs the node type {class_type!r}, which that server "
                    "does not have (a custom node that is not installed there?)."
                )
        for param, bindings in self.parameters.items():
            for binding in bindings:
                class_type = self.graph[binding.node]["class_type"]
                spec = object_info[class_type].get("input") or {}
                names = [*spec.get("required", {}), *spec.get("optional", {})]
                if binding.input not in names:
                    raise PermanentProviderError(
                        f"{where}: parameter {param!r} is mapped to input {binding.input!r} of "
                        f"{self.describe(binding.node)}, which has no such input (it has {', '.join(names) or 'none'})."
                    )
        if with_loras:
            if "LoraLoader" not in object_info:
                raise PermanentProviderError(f"{where}: the server has no LoraLoader node, so LoRAs cannot be applied.")
            sources = (("lora.model", self.lora_model, "MODEL"), ("lora.clip", self.lora_clip, "CLIP"))
            for label, source, wanted in sources:
                if source is None:
                    continue
                outputs = object_info[self.graph[source[0]]["class_type"]].get("output") or []
                got = outputs[source[1]] if source[1] < len(outputs) else None
                if got != wanted:
                    raise PermanentProviderError(
                        f"{where}: {label} points at output {source[1]} of {self.describe(source[0])}, which is "
                        f"{got or 'missing'}, not {wanted}."
                    )


class _Resolver:
    """Node references: an id, else a unique ``_meta.title``."""

    def __init__(self, graph: dict[str, dict], where: str):
        self.graph, self.where = graph, where

    def __call__(self, ref: Any, what: str) -> str:
        ref = str(ref)
        if ref in self.graph:
            return ref
        matches = [node_id for node_id, node in self.graph.items() if (node.get("_meta") or {}).get("title") == ref]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ImproperlyConfigured(
                f"{self.where}: {what} names node {ref!r}, but nodes {', '.join(matches)} all have that title; "
                "use the id."
            )
        titles = sorted({(node.get("_meta") or {}).get("title", "") for node in self.graph.values()} - {""})
        raise ImproperlyConfigured(
            f"{self.where}: {what} names node {ref!r}, but the graph has no node with that id or title "
            f"(titles: {', '.join(titles) or 'none'})."
        )


def _source(resolve: _Resolver, spec: Any, what: str) -> tuple[str, int]:
    if not isinstance(spec, dict) or "node" not in spec:
        raise ImproperlyConfigured(f"{resolve.where}: {what} must be {{'node': <title or id>, 'output': <slot>}}.")
    return resolve(spec["node"], what), int(spec.get("output", 0))


def _load_graph(source: Any, where: str) -> dict[str, dict]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            graph = json.loads(path.read_text())
        except OSError as exc:
            raise ImproperlyConfigured(f"{where}: cannot read the graph file {str(path)!r} ({exc.strerror}).") from exc
        except ValueError as exc:
            raise ImproperlyConfigured(f"{where}: {str(path)!r} is not valid JSON ({exc}).") from exc
    else:
        graph = copy.deepcopy(source)
    if not isinstance(graph, dict) or not graph:
        raise ImproperlyConfigured(f"{where}: 'graph' must be a ComfyUI API-format graph (a file path or a dict).")
    if "nodes" in graph and "links" in graph:
        raise ImproperlyConfigured(
            f'{where}: the graph is in ComfyUI\'s UI format; export it with "Save (API Format)" instead.'
        )
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise ImproperlyConfigured(f"{where}: node {node_id!r} has no class_type; is this an API-format export?")
    return {str(node_id): node for node_id, node in graph.items()}


@lru_cache(maxsize=1)
def _shipped_configs() -> dict[str, dict[str, Any]]:
    configs = {}
    for mapping_path in sorted(SHIPPED_DIR.glob("*.mapping.json")):
        name = mapping_path.name.removesuffix(".mapping.json")
        config = json.loads(mapping_path.read_text())
        config["graph"] = json.loads((SHIPPED_DIR / f"{name}.json").read_text())
        configs[name] = config
    return configs


def shipped_workflows() -> dict[str, Workflow]:
    """The templates that ship in ``blogimages/workflows/`` (graph ``<name>.json`` + ``<name>.mapping.json``)."""
    return {
        name: Workflow.from_config(name, config, where=f"Shipped workflow {name!r}")
        for name, config in _shipped_configs().items()
    }


def load_workflows(extra: dict[str, Any] | None, *, where: str) -> dict[str, Workflow]:
    """Shipped templates plus the operator's (which may replace a shipped one of the same name)."""
    workflows = shipped_workflows()
    for name, config in (extra or {}).items():
        workflows[name] = Workflow.from_config(name, config, where=f"{where}: workflow {name!r}")
    return workflows


# --- from a request to a graph (shared by every provider that runs ComfyUI workflows) ---------------


def choose(
    workflows: dict[str, Workflow], request: GenerationRequest, default: str, owner: str
) -> tuple[Workflow, str]:
    """The workflow for a request and the model file to put in it ("" keeps the template's).

    ``request.model`` names a workflow (``"sdxl"``), a model file for the default workflow
    (``"my_finetune.safetensors"``) or both (``"flux1_dev:flux1-dev-fp8.safetensors"``);
    ``request.extra["workflow"]`` wins over all of them.
    """
    model = (request.model or "").strip()
    name = str(request.extra.get("workflow") or "")
    model_file = ""
    if name:
        model_file = "" if model in workflows else model
    elif model in workflows:
        name = model
    elif ":" in model and model.split(":", 1)[0] in workflows:
        name, model_file = model.split(":", 1)
    else:
        name, model_file = default, model
    if name not in workflows:
        raise PermanentProviderError(f"{owner} has no workflow {name!r}; it has {', '.join(sorted(workflows))}.")
    return workflows[name], model_file


def adapt(workflow: Workflow, request: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
    """What ``prepare()`` does for a workflow: round the size, say what will not be used, refuse
    LoRAs that have nowhere to go."""
    notes = []
    step = workflow.size_multiple
    width, height = snapped_size(request, step)
    if (width, height) != (request.width, request.height):
        notes.append(
            f"Size {request.width}\u00d7{request.height} was rounded to {width}\u00d7{height}: "
            f"{workflow.label} works in steps of {step} pixels."
        )
    if request.negative_prompt.strip() and "negative_prompt" not in workflow.parameters:
        notes.append(f"The negative prompt is not used: {workflow.label} has no negative prompt input.")
    unused = sorted(key for key in request.extra if key not in workflow.parameters and key not in STEERING)
    if unused:
        notes.append(f"Not used by {workflow.label}: {', '.join(unused)}.")
    if build_stack(request.loras, request.extra.get("character_loras") or ()) and workflow.lora_model is None:
        raise PermanentProviderError(
            f'Workflow {workflow.name!r} has no LoRA insertion point ("lora" in its mapping), so this '
            "request's LoRAs cannot be applied; pick another workflow or add one."
        )
    return replace(request, width=width, height=height), notes


def parameter_values(
    workflow: Workflow, request: GenerationRequest, *, model_file: str, seed: int, filename_prefix: str
) -> dict[str, Any]:
    """Values for the workflow's mapped parameters; what the request leaves unset keeps the template's."""
    values: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "width": request.width,
        "height": request.height,
        "seed": seed,
        "filename_prefix": f"{filename_prefix}_{request.result_id}" if request.result_id else filename_prefix,
    }
    optional = {
        "steps": request.steps,
        "guidance": request.guidance_scale,
        "sampler": request.sampler,
        "scheduler": request.scheduler,
        "model": model_file,
    }
    values.update({name: value for name, value in optional.items() if value not in (None, "")})
    for name, value in request.extra.items():
        # Anything else the workflow maps (batch_size, shift, clip_l, vae, ...) from the setting's extras.
        if name in workflow.parameters and name not in STEERING and name not in values:
            values[name] = value
    return values


def graph_for(
    workflow: Workflow, request: GenerationRequest, *, model_file: str, seed: int, filename_prefix: str
) -> tuple[dict[str, dict], list[StackedLora]]:
    """The API-format graph to send for a request, and the LoRA stack that went into it."""
    stack = build_stack(request.loras, request.extra.get("character_loras") or ())
    values = parameter_values(workflow, request, model_file=model_file, seed=seed, filename_prefix=filename_prefix)
    return workflow.build(values, stack), stack
