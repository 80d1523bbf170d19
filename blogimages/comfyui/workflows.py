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
``{"template": "<shipped name>", "defaults": {parameter: value}}`` reuses a shipped
template with other default values (any other key given replaces the template's).

Edits (``request.edit``: refine, variations, upscale, reference) run *edit workflows*,
whose mapping says ``"operation": "img2img" | "inpaint" | "upscale"`` and maps, besides
the usual parameters:

* ``source_image``: the ``LoadImage`` input that receives the uploaded source's name;
* ``mask`` (inpaint): a ``LoadImageMask`` input that receives the uploaded mask, a grey
  PNG, white where the image may change (read it with ``channel: "red"``); or the very
  same node and input as ``source_image``: then one RGBA image is uploaded, the source
  with the mask in its alpha channel (transparent = change), as ComfyUI's own mask editor
  saves it, and ``LoadImage``'s ``MASK`` output (1 - alpha) is the mask;
* ``denoise``: the sampler's denoise, which receives the edit's strength;
* ``width`` / ``height``: the size to make (img2img and inpaint resize the source to the
  request's size; upscale: the target size), and optionally ``scale`` (e.g.
  ``ImageScaleBy.scale_by``) and ``upscale_model`` (``UpscaleModelLoader.model_name``).

``prompt`` and ``seed`` are required of img2img and inpaint workflows, not of upscale
ones. A text-to-image workflow names its edit workflows in ``"edits": {"img2img": ...,
"inpaint": ..., "upscale": ...}``; without that, ``<name>_img2img`` / ``<name>_inpaint``
and the workflow ``upscale`` are used where they exist. Refine, variations and reference
run img2img (inpaint when a mask is painted), upscale runs upscale. Edit workflows are
not offered as models: the request's model names the text-to-image workflow, whose edit
workflows then run.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from PIL import Image, ImageOps, UnidentifiedImageError

from ..contract import EditInputs, GenerationRequest, snapped_size
from ..exceptions import PermanentProviderError
from .loras import StackedLora, build_stack, insert_chain

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "workflows"
#: Parameters every workflow must map: without them each image would be the same.
REQUIRED = ("prompt", "seed")
#: The kinds of graph an edit runs (a mapping's "operation"); "generate" is text-to-image.
EDIT_KINDS = ("img2img", "inpaint", "upscale")
OPERATIONS = ("generate", *EDIT_KINDS)
#: What each kind must map, besides what is checked separately (upscale: a size or a scale).
REQUIRED_BY_KIND = {
    "generate": REQUIRED,
    "img2img": (*REQUIRED, "source_image"),
    "inpaint": (*REQUIRED, "source_image", "mask"),
    "upscale": ("source_image",),
}
KIND_WORDS = {"img2img": "image-to-image", "inpaint": "inpainting", "upscale": "upscale"}
#: The denoise an edit runs at when the editor gives no strength.
DEFAULT_STRENGTH = {"refine": 0.6, "inpaint": 0.85, "variations": 0.45, "reference": 0.75}
#: ComfyUI's ImageScale takes at most this many pixels a side.
MAX_SIDE = 16384
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
    operation: str = "generate"  # or one of EDIT_KINDS: what kind of graph it is
    edit_names: dict[str, str] = field(default_factory=dict)  # the mapping's "edits": kind -> workflow name
    edits: dict[str, Workflow] = field(default_factory=dict, repr=False)  # resolved by load_workflows

    # --- loading -----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, name: str, config: dict[str, Any], *, where: str = "") -> Workflow:
        """Build and check a workflow; every mistake is an ImproperlyConfigured naming the spot."""
        where = where or f"ComfyUI workflow {name!r}"
        if not isinstance(config, dict):
            raise ImproperlyConfigured(f"{where}: expected a dict with 'graph' and 'parameters', got {config!r}.")
        known = {"label", "graph", "parameters", "output", "lora", "size_multiple", "notes", "operation", "edits"}
        unknown = set(config) - known - {"template", "defaults"}
        if unknown:
            raise ImproperlyConfigured(f"{where}: unknown key(s) {', '.join(sorted(unknown))}.")
        if "template" in config:
            templates = _shipped_configs()
            if config["template"] not in templates:
                raise ImproperlyConfigured(
                    f"{where}: 'template' must name a shipped workflow ({', '.join(sorted(templates))}), "
                    f"not {config['template']!r}."
                )
            config = {
                **copy.deepcopy(templates[config["template"]]),
                **{k: v for k, v in config.items() if k != "template"},
            }
        operation = str(config.get("operation") or "generate")
        if operation not in OPERATIONS:
            raise ImproperlyConfigured(
                f"{where}: 'operation' must be one of {', '.join(OPERATIONS)}, not {config.get('operation')!r}."
            )
        edit_names = config.get("edits") or {}
        if not isinstance(edit_names, dict) or set(edit_names) - set(EDIT_KINDS):
            raise ImproperlyConfigured(
                f"{where}: 'edits' must map some of {', '.join(EDIT_KINDS)} to workflow names, not {edit_names!r}."
            )
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
        for param in REQUIRED_BY_KIND[operation]:
            if param not in parameters:
                raise ImproperlyConfigured(
                    f"{where}: the mapping has no {param!r} parameter; add "
                    f'"{param}": {{"node": <title or id>, "input": <input name>}}.'
                )
        if operation == "upscale" and not ({"width", "height"} <= set(parameters) or "scale" in parameters):
            raise ImproperlyConfigured(
                f"{where}: an upscale workflow must map 'width' and 'height' (the target size) or 'scale' (the factor)."
            )
        output_spec = config.get("output")
        if isinstance(output_spec, dict):
            output_spec = output_spec.get("node")
        if not output_spec:
            raise ImproperlyConfigured(
                f'{where}: name the node whose images are the result, e.g. "output": "Save image".'
            )
        lora = config.get("lora") or {}
        defaults = config.get("defaults") or {}
        for param in defaults:
            if param not in parameters:
                raise ImproperlyConfigured(
                    f"{where}: 'defaults' sets {param!r}, which the mapping does not map "
                    f"(it maps {', '.join(sorted(parameters))})."
                )
        workflow = cls(
            name=name,
            label=str(config.get("label") or name),
            graph=graph,
            parameters=parameters,
            output=resolve(output_spec, "output"),
            lora_model=_source(resolve, lora.get("model"), "lora.model") if lora.get("model") else None,
            lora_clip=_source(resolve, lora.get("clip"), "lora.clip") if lora.get("clip") else None,
            size_multiple=int(config.get("size_multiple") or 8),
            notes=list(config.get("notes") or []),
            operation=operation,
            edit_names={str(kind): str(value) for kind, value in edit_names.items()},
        )
        # The template's own values, changed: a new default, still replaced by what a request sets.
        workflow.fill(workflow.graph, defaults)
        return workflow

    # --- filling in ------------------------------------------------------------------------------

    def build(self, values: dict[str, Any], loras: list[StackedLora] = ()) -> dict[str, dict]:
        """A fresh graph with ``values`` written into the mapped inputs and the LoRA chain inserted."""
        graph = self.fill(copy.deepcopy(self.graph), values)
        if loras:
            if self.lora_model is None:
                raise PermanentProviderError(
                    f'Workflow {self.name!r} has no LoRA insertion point ("lora" in its mapping), '
                    f"so the LoRAs {', '.join(lora.name for lora in loras)} cannot be applied."
                )
            insert_chain(graph, list(loras), self.lora_model, self.lora_clip)
        return graph

    def fill(self, graph: dict[str, dict], values: dict[str, Any]) -> dict[str, dict]:
        """Write ``values`` into the mapped inputs of ``graph`` (in place; returned for chaining)."""
        for param, value in values.items():
            for binding in self.parameters.get(param, ()):
                graph[binding.node].setdefault("inputs", {})[binding.input] = value
        return graph

    def for_request(self, request: GenerationRequest) -> Workflow:
        """The workflow that runs ``request``: this one, or for an edit the edit workflow of its kind."""
        edit = request.edit
        if edit is None:
            if self.operation != "generate":
                raise PermanentProviderError(
                    f"Workflow {self.name!r} is an {KIND_WORDS[self.operation]} workflow: it needs an image to "
                    "start from, so it cannot make a new image from a prompt alone."
                )
            return self
        kind = edit_kind(edit)
        if self.operation == kind:
            return self
        found = self.edits.get(kind)
        if found is None:
            what = "paint a mask on" if kind == "inpaint" else edit.operation
            raise PermanentProviderError(
                f"Workflow {self.name!r} has no {KIND_WORDS[kind]} workflow, so it cannot {what} an image; "
                f'name one in its mapping\'s "edits" (e.g. "{kind}": "my_{kind}") or pick another workflow.'
            )
        return found

    def uses_combined_mask(self) -> bool:
        """The mask goes into the source's alpha channel (``mask`` is mapped to the source's input)."""
        return "mask" in self.parameters and self.parameters["mask"] == self.parameters.get("source_image")

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


def _all_shipped() -> dict[str, Workflow]:
    return {
        name: Workflow.from_config(name, config, where=f"Shipped workflow {name!r}")
        for name, config in _shipped_configs().items()
    }


def shipped_workflows() -> dict[str, Workflow]:
    """The text-to-image templates that ship in ``blogimages/workflows/`` (graph ``<name>.json`` +
    ``<name>.mapping.json``), each with its shipped edit workflows in ``edits``."""
    return _resolve_edits(_all_shipped(), where="Shipped workflows")


def load_workflows(extra: dict[str, Any] | None, *, where: str) -> dict[str, Workflow]:
    """Shipped templates plus the operator's (which may replace a shipped one of the same name).

    Only text-to-image workflows are returned (the models an editor can pick); each carries
    the edit workflows it runs refines, variations, upscales and references with.
    """
    workflows = _all_shipped()
    for name, config in (extra or {}).items():
        workflows[name] = Workflow.from_config(name, config, where=f"{where}: workflow {name!r}")
    return _resolve_edits(workflows, where=where)


def _resolve_edits(workflows: dict[str, Workflow], *, where: str) -> dict[str, Workflow]:
    """Attach to each text-to-image workflow its edit workflows; return the text-to-image ones."""
    for workflow in workflows.values():
        if workflow.operation != "generate":
            continue
        edits = {}
        for kind in EDIT_KINDS:
            name = workflow.edit_names.get(kind)
            if name is None:
                # By convention: "<name>_img2img", "<name>_inpaint", else a generic one ("upscale").
                candidates = (f"{workflow.name}_{kind}", kind)
                name = next((c for c in candidates if c in workflows and workflows[c].operation == kind), None)
                if name is None:
                    continue
            if name not in workflows:
                raise ImproperlyConfigured(
                    f'{where}: workflow {workflow.name!r} names {name!r} as its {kind} workflow in "edits", '
                    "but there is no workflow of that name."
                )
            if workflows[name].operation != kind:
                raise ImproperlyConfigured(
                    f'{where}: workflow {workflow.name!r} names {name!r} as its {kind} workflow in "edits", '
                    f'but that mapping says "operation": "{workflows[name].operation}".'
                )
            edits[kind] = workflows[name]
        workflow.edits = edits
    return {name: workflow for name, workflow in workflows.items() if workflow.operation == "generate"}


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
    LoRAs that have nowhere to go. An edit is checked against the edit workflow that runs it."""
    notes: list[str] = []
    workflow = workflow.for_request(request)
    if request.edit is not None:
        request, notes = _adapt_edit(workflow, request)
    step = workflow.size_multiple
    width, height = snapped_size(request, step)
    if (width, height) != (request.width, request.height):
        notes.append(
            f"Size {request.width}\u00d7{request.height} was rounded to {width}\u00d7{height}: "
            f"{workflow.label} works in steps of {step} pixels."
        )
    if (
        request.negative_prompt.strip()
        and "prompt" in workflow.parameters
        and "negative_prompt" not in workflow.parameters
    ):
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
    workflow: Workflow,
    request: GenerationRequest,
    *,
    model_file: str,
    seed: int,
    filename_prefix: str,
    images: dict[str, str] | None = None,
) -> tuple[dict[str, dict], list[StackedLora]]:
    """The API-format graph to send for a request, and the LoRA stack that went into it.

    For an edit it is the edit workflow's graph, with the names of :func:`edit_uploads`' files
    in ``source_image`` / ``mask``, or ``images`` (``{"source_image": ..., "mask": ...}``):
    the names the server gave the uploads.
    """
    workflow = workflow.for_request(request)
    stack = build_stack(request.loras, request.extra.get("character_loras") or ())
    values = parameter_values(workflow, request, model_file=model_file, seed=seed, filename_prefix=filename_prefix)
    if request.edit is not None:
        values.update(edit_values(workflow, request, images))
    return workflow.build(values, stack), stack


# --- edits: what is uploaded, what goes into the edit workflow -------------------------------------------


def edit_kind(edit: EditInputs) -> str:
    """The kind of workflow an edit runs: upscale, inpaint (a mask was painted) or img2img."""
    if edit.operation == "upscale":
        return "upscale"
    return "inpaint" if edit.mask else "img2img"


def edit_strength(edit: EditInputs) -> float:
    """The denoise an edit runs at: the editor's strength, else the operation's default."""
    if edit.strength is not None:
        return float(edit.strength)
    return DEFAULT_STRENGTH["inpaint" if edit.mask and edit.operation == "refine" else edit.operation]


@dataclass(frozen=True)
class EditUpload:
    """One file an edit workflow loads: uploaded to ComfyUI's input folder (``/upload/image``)
    or sent in RunPod's ``input.images``. ``param`` is the mapping key its name goes to."""

    param: str  # "source_image" or "mask"
    filename: str  # content-addressed: the same bytes always get the same name
    content: bytes
    content_type: str = "image/png"


EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def edit_uploads(workflow: Workflow, request: GenerationRequest) -> list[EditUpload]:
    """The files to upload for ``request``'s edit, in its edit workflow's convention.

    The source goes as stored. The mask (white = change) goes as a grey PNG for a
    ``LoadImageMask`` (which reads it from the red channel), or, where the workflow maps
    ``mask`` to the source's own ``LoadImage``, into the source's alpha channel (transparent
    = change: ``LoadImage``'s ``MASK`` output is ``1 - alpha``). Names are content-addressed
    (``blogimages-source-<sha256>.png``), so a source edited many times is stored once.
    """
    edit = request.edit
    if edit is None:
        return []
    workflow = workflow.for_request(request)
    if "source_image" not in workflow.parameters:
        return []
    use_mask = edit.mask is not None and "mask" in workflow.parameters
    if use_mask and workflow.uses_combined_mask():
        return [_named("source_image", "masked", source_with_mask(edit.source.content, edit.mask), "image/png")]
    content, content_type = edit.source.content, edit.source.content_type
    if content_type not in EXTENSIONS:
        content, content_type = _reencoded(content, "source image"), "image/png"
    uploads = [_named("source_image", "source", content, content_type)]
    if use_mask:
        uploads.append(_named("mask", "mask", mask_png(edit.mask), "image/png"))
    return uploads


def edit_values(workflow: Workflow, request: GenerationRequest, images: dict[str, str] | None = None) -> dict[str, Any]:
    """The edit's values for its workflow: strength as denoise, scale, and the uploaded files' names."""
    edit = request.edit
    values: dict[str, Any] = {}
    if edit is None:
        return values
    if workflow.operation != "upscale" and "denoise" in workflow.parameters:
        values["denoise"] = edit_strength(edit)
    if "scale" in workflow.parameters:
        values["scale"] = edit.scale or round(request.width / max(1, edit.source.width), 4)
    if images is None:
        images = {upload.param: upload.filename for upload in edit_uploads(workflow, request)}
    values.update(images)
    return values


def edit_problem(workflows: dict[str, Workflow], request: GenerationRequest, default: str, owner: str) -> str:
    """Why these workflows cannot run ``request.edit``, as a sentence; "" when they can.

    Offline and quick (for ``edit_refusal``): the edit workflow exists, the mask fits the
    source, the size is within ComfyUI's limits, a refine or reference has an instruction.
    """
    edit = request.edit
    if edit is None:
        return ""
    try:
        base, _ = choose(workflows, request, default, owner)
        workflow = base.for_request(request)
        _adapt_edit(workflow, request)
    except PermanentProviderError as exc:
        return str(exc)
    if edit.operation in ("refine", "reference") and "prompt" in workflow.parameters and not request.prompt.strip():
        return f"To {edit.operation} an image with {workflow.label}, say what to change (the instruction is empty)."
    return ""


def _adapt_edit(workflow: Workflow, request: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
    """The request as ``workflow`` runs the edit (an upscale's target size), and notes."""
    edit = request.edit
    notes: list[str] = []
    if edit.mask is not None:
        mask_size = _image(edit.mask, "mask").size
        if mask_size != (edit.source.width, edit.source.height):
            raise PermanentProviderError(
                f"The mask is {mask_size[0]}\u00d7{mask_size[1]} pixels but the image is "
                f"{edit.source.width}\u00d7{edit.source.height}; paint the mask on the image itself."
            )
    if workflow.operation == "upscale":
        if edit.scale:
            width, height = round(edit.source.width * edit.scale), round(edit.source.height * edit.scale)
            request = replace(request, width=width, height=height)
        if max(request.width, request.height) > MAX_SIDE:
            raise PermanentProviderError(
                f"Upscaling to {request.width}\u00d7{request.height} is over ComfyUI's limit of {MAX_SIDE} pixels "
                "a side; choose a smaller size or factor."
            )
        if edit.mask is not None:
            notes.append("The mask is not used: an upscale changes the whole image.")
        if request.loras or request.extra.get("character_loras"):
            notes.append("LoRAs are not used when upscaling.")
            extra = {key: value for key, value in request.extra.items() if key != "character_loras"}
            request = replace(request, loras=(), extra=extra)
    elif edit.strength is not None and "denoise" not in workflow.parameters:
        notes.append(f"The strength is not used: {workflow.label} has no denoise input.")
    return request, notes


def _image(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PermanentProviderError(f"The {what} is not an image that can be read ({exc}).") from exc
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _reencoded(data: bytes, what: str) -> bytes:
    image = _image(data, what)
    return _png(image.convert("RGBA" if "A" in image.getbands() else "RGB"))


def mask_png(mask: bytes) -> bytes:
    """Our mask (white = change) as a grey PNG: ``LoadImageMask`` with ``channel: "red"``
    reads it as it is (ComfyUI's MASK: 1.0 = change)."""
    return _png(_image(mask, "mask").convert("L"))


def source_with_mask(source: bytes, mask: bytes) -> bytes:
    """The source as an RGBA PNG whose alpha is the inverted mask (transparent = change), as
    ComfyUI's mask editor saves it: ``LoadImage`` returns the colours and ``1 - alpha`` as MASK."""
    image = _image(source, "source image").convert("RGB")
    image.putalpha(ImageOps.invert(_image(mask, "mask").convert("L")))
    return _png(image)


def _named(param: str, role: str, content: bytes, content_type: str) -> EditUpload:
    digest = hashlib.sha256(content).hexdigest()[:20]
    return EditUpload(param, f"blogimages-{role}-{digest}.{EXTENSIONS[content_type]}", content, content_type)
