"""LoRA stacks: which LoRAs, in what order, at what strength, and where they go in a graph.

The rules come from the pipeline this app replaces: the style LoRA first, then the
character LoRAs, then the cinematic LoRA last; more characters means each character
LoRA (and the cinematic one) is applied more weakly, so that several stacked LoRAs do
not overpower the base model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..contract import Lora

#: Character LoRA strength for 1, 2, and 3 or more characters.
CHARACTER_STRENGTHS = (0.85, 0.75, 0.65)
#: Cinematic LoRA strength for 0, 1, 2, and 3 or more characters.
CINEMATIC_STRENGTHS = (1.0, 0.95, 0.85, 0.75)
ROLES = ("style", "character", "cinematic")
LORA_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class StackedLora:
    name: str
    strength: float
    role: str


def lora_file(name: str) -> str:
    """ComfyUI lists LoRAs by file name; a bare name (as the old pipeline stored them) gets ``.safetensors``."""
    name = name.strip()
    return name if name.lower().endswith(LORA_EXTENSIONS) else f"{name}.safetensors"


def character_strength(characters: int) -> float:
    return CHARACTER_STRENGTHS[min(max(characters, 1), 3) - 1]


def cinematic_strength(characters: int) -> float:
    return CINEMATIC_STRENGTHS[min(max(characters, 0), 3)]


def build_stack(loras: Iterable[Lora], character_loras: Iterable[Any] = ()) -> list[StackedLora]:
    """Order and weigh a request's LoRAs.

    ``loras`` are the style's (each with a role); ``character_loras`` come from the request
    (``extra["character_loras"]``): file names, ``Lora`` objects or ``{"name", "strength"}``
    dicts. A LoRA's own strength is multiplied by its role's factor, so the defaults (1.0)
    give exactly the table above. A file named twice is applied once, at its first place.
    """
    by_role: dict[str, list[Lora]] = {role: [] for role in ROLES}
    for lora in loras:
        by_role[lora.role if lora.role in by_role else "style"].append(lora)
    for entry in character_loras or ():
        by_role["character"].append(_as_character(entry))
    characters = len({lora_file(lora.name) for lora in by_role["character"]})
    stack: list[StackedLora] = []
    seen: set[str] = set()
    for role in ROLES:
        for lora in by_role[role]:
            name = lora_file(lora.name)
            if name in seen:
                continue
            seen.add(name)
            factor = {
                "style": 1.0,
                "character": character_strength(characters),
                "cinematic": cinematic_strength(characters),
            }[role]
            stack.append(StackedLora(name=name, strength=round(lora.strength * factor, 4), role=role))
    return stack


def _as_character(entry: Any) -> Lora:
    if isinstance(entry, Lora):
        return Lora(name=entry.name, strength=entry.strength, role="character")
    if isinstance(entry, Mapping):
        return Lora(name=str(entry.get("name", "")), strength=float(entry.get("strength", 1.0)), role="character")
    return Lora(name=str(entry), role="character")


def insert_chain(
    graph: dict[str, dict],
    stack: list[StackedLora],
    model_source: tuple[str, int],
    clip_source: tuple[str, int] | None,
) -> list[str]:
    """Chain one LoraLoader per LoRA between the loaders and every node that used them.

    Every input linked to ``model_source`` (and ``clip_source``) is rewired to the end of
    the chain, so the template needs no LoRA nodes of its own. Without a CLIP source the
    chain uses ``LoraLoaderModelOnly``. Returns the new node ids, in chain order.
    """
    if not stack:
        return []
    next_id = max((int(node_id) for node_id in graph if node_id.isdigit()), default=0) + 1
    model_link, clip_link = list(model_source), list(clip_source) if clip_source else None
    added: list[str] = []
    for index, lora in enumerate(stack, start=1):
        node_id = str(next_id)
        next_id += 1
        inputs: dict[str, Any] = {"model": model_link, "lora_name": lora.name, "strength_model": lora.strength}
        if clip_link is not None:
            inputs.update(clip=clip_link, strength_clip=lora.strength)
        graph[node_id] = {
            "class_type": "LoraLoader" if clip_link is not None else "LoraLoaderModelOnly",
            "inputs": inputs,
            "_meta": {"title": f"LoRA {index}: {lora.name} ({lora.role})"},
        }
        added.append(node_id)
        model_link = [node_id, 0]
        if clip_link is not None:
            clip_link = [node_id, 1]
    rewire = {tuple(model_source): model_link}
    if clip_source is not None:
        rewire[tuple(clip_source)] = clip_link
    for node_id, node in graph.items():
        if node_id in added:
            continue
        for name, value in node.get("inputs", {}).items():
            if isinstance(value, list) and len(value) == 2 and (str(value[0]), value[1]) in rewire:
                node["inputs"][name] = list(rewire[(str(value[0]), value[1])])
    return added
