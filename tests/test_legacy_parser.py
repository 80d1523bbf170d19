"""The legacy-settings parser, rule by rule (README of ../shared/legacy-settings) and on the sample.

``RULE_CASES`` and ``SAMPLE_CASES`` are also run through ``blogimages_migrate_settings`` in
test_migrate_settings_command.py, so every rule is checked end to end, not only here.
Each case has the shape of a sample.jsonl line: ``expect`` is the exact set of structured
fields (a field not named must stay unset), ``expect_extra`` keys that must be in
extra_settings, ``expect_warning`` whether the row must carry a warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blogimages.legacy import A1111_SAMPLERS, ASPECT_SIZES, parse_legacy_text

# A copy of ../shared/legacy-settings/sample.jsonl kept with the tests (the checkout must
# not depend on a folder beside it); test_sample_copy_is_current keeps the two in step.
SAMPLE = Path(__file__).parent / "data" / "legacy_sample.jsonl"
SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "legacy-settings" / "sample.jsonl"


def _load_sample() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


SAMPLE_CASES = _load_sample()


def case(id: str, text: str, expect: dict, extra: dict | None = None, warning: bool = False) -> dict:  # noqa: A002
    return {"id": id, "text": text, "expect": expect, "expect_extra": extra or {}, "expect_warning": warning}


SQUARE = {"width": 1024, "height": 1024}

RULE_CASES = [
    # Separators: commas, semicolons, newlines, |, " - ", em dashes.
    case("sep-comma", "1024x1024, 30 steps", {**SQUARE, "steps": 30}),
    case("sep-semicolon", "1024x1024; 30 steps", {**SQUARE, "steps": 30}),
    case("sep-newline", "1024x1024\n30 steps\ncfg 7", {**SQUARE, "steps": 30, "guidance_scale": 7.0}),
    case("sep-crlf", "1024x1024\r\nsteps: 30", {**SQUARE, "steps": 30}),
    case("sep-pipe", "1024x1024 | 30 steps | cfg 5", {**SQUARE, "steps": 30, "guidance_scale": 5.0}),
    case("sep-spaced-hyphen", "1024x1024 - 30 steps - cfg 5", {**SQUARE, "steps": 30, "guidance_scale": 5.0}),
    case("sep-em-dash", "1024x1024 — 30 steps—cfg 5", {**SQUARE, "steps": 30, "guidance_scale": 5.0}),
    # Key forms, in any case.
    case("form-colon", "steps: 30", {"steps": 30}),
    case("form-equals", "steps=30", {"steps": 30}),
    case("form-key-value", "steps 30", {"steps": 30}),
    case("form-value-key", "30 steps", {"steps": 30}),
    case("form-value-key-float", "7.5 cfg", {"guidance_scale": 7.5}),
    case(
        "form-upper-case",
        "STEPS: 30, CFG=7, WIDTH 512, Height 512",
        {"steps": 30, "guidance_scale": 7.0, "width": 512, "height": 512},
    ),
    case("form-flags", "--steps 12 --cfg 3 --seed 99", {"steps": 12, "guidance_scale": 3.0, "seed": 99}),
    case("form-no-space", "cfg7.5 steps30", {"steps": 30, "guidance_scale": 7.5}),
    case("form-spaced-colon", "Steps : 30", {"steps": 30}),
    # JSON objects and YAML-like lines, by key, with synonyms.
    case(
        "json-synonyms",
        json.dumps(
            {
                "w": 832,
                "h": 1216,
                "cfg_scale": 5,
                "sampler_name": "Euler a",
                "negative prompt": "text, watermark",
                "seed": -1,
            }
        ),
        {
            "width": 832,
            "height": 1216,
            "guidance_scale": 5.0,
            "sampler": "euler_ancestral",
            "negative_prompt": "text, watermark",
        },
    ),
    case(
        "json-size",
        json.dumps({"size": "1792x1024", "quality": "hd", "style": "natural"}),
        {"width": 1792, "height": 1024},
        {"quality": "hd", "style": "natural"},
    ),
    case(
        "json-unknown-key",
        json.dumps({"steps": 20, "hires_fix": True}),
        {"steps": 20},
        {"unparsed": None},
        warning=True,
    ),
    case(
        "yaml-quoted",
        'sampler: "DPM++ 2M"\nscheduler: karras\nmodel: "juggernaut xl"',
        {"sampler": "dpmpp_2m", "scheduler": "karras", "model": "juggernaut xl"},
    ),
    case("yaml-bullets", "- width: 512\n- height: 768", {"width": 512, "height": 768}),
    # Synonyms of guidance_scale.
    case("syn-cfg", "cfg 6", {"guidance_scale": 6.0}),
    case("syn-cfg-scale", "CFG scale: 6", {"guidance_scale": 6.0}),
    case("syn-cfg_scale", "cfg_scale=6", {"guidance_scale": 6.0}),
    case("syn-guidance", "guidance 6", {"guidance_scale": 6.0}),
    case("syn-w-h", "w=640, h=480", {"width": 640, "height": 480}),
    case("syn-sampler_name", "sampler_name: heun", {"sampler": "heun"}),
    case("syn-size", "size: 640x480", {"width": 640, "height": 480}),
    # Negative prompts: the value runs to the end of its line, commas and all.
    case("neg-short", "neg: blurry, lowres; jpeg", {"negative_prompt": "blurry, lowres; jpeg"}),
    case("neg-negative", "30 steps\nnegative: text, watermark", {"steps": 30, "negative_prompt": "text, watermark"}),
    case(
        "neg-negative-prompt",
        "Negative prompt: ugly, bad hands\nSteps: 20",
        {"steps": 20, "negative_prompt": "ugly, bad hands"},
    ),
    # Dimensions.
    case("dims-x", "640x480", {"width": 640, "height": 480}),
    case("dims-spaced", "640 x 480", {"width": 640, "height": 480}),
    case("dims-times", "640×480", {"width": 640, "height": 480}),
    case("dims-star", "640*480", {"width": 640, "height": 480}),
    case("dims-px", "640x480px", {"width": 640, "height": 480}),
    case("dims-px-both", "640px x 480px", {"width": 640, "height": 480}),
    case("dims-capital-x", "640X480", {"width": 640, "height": 480}),
    # Aspects, only when no explicit dimensions are given.
    *[case(f"aspect-{a}-{b}", f"{a}:{b}", {"width": w, "height": h}) for (a, b), (w, h) in ASPECT_SIZES.items()],
    case("aspect-square", "square", SQUARE),
    case("aspect-landscape", "landscape", {"width": 1216, "height": 832}),
    case("aspect-portrait", "portrait", {"width": 832, "height": 1216}),
    case("aspect-flag", "--ar 16:9", {"width": 1344, "height": 768}),
    case("aspect-key", "aspect ratio: 9:16", {"width": 768, "height": 1344}),
    case("aspect-agrees-silently", "16:9, 1344x768", {"width": 1344, "height": 768}),
    case("aspect-word-agrees-silently", "portrait 768x1344", {"width": 768, "height": 1344}),
    case("aspect-explicit-wins", "1:1, 1344x768", {"width": 1344, "height": 768}, warning=True),
    case("aspect-one-side", "16:9, width 1024", {"width": 1024, "height": 576}),
    case("aspect-conflict", "square, 16:9", {}, warning=True),
    # Samplers: A1111 names to ComfyUI names; Karras / Exponential set the scheduler.
    *[
        case(f"sampler-{name.replace(' ', '-')}", f"sampler: {name.title()}", {"sampler": comfy})
        for name, comfy in A1111_SAMPLERS.items()
    ],
    case("sampler-karras", "Sampler: DPM++ 2M Karras", {"sampler": "dpmpp_2m", "scheduler": "karras"}),
    case("sampler-exponential", "sampler: DPM++ SDE Exponential", {"sampler": "dpmpp_sde", "scheduler": "exponential"}),
    case("sampler-2m-sde-karras", "DPM++ 2M SDE Karras", {"sampler": "dpmpp_2m_sde", "scheduler": "karras"}),
    case("sampler-unlabelled", "Euler a, 20 steps", {"sampler": "euler_ancestral", "steps": 20}),
    case("sampler-comfy-pass-through", "sampler: dpmpp_2m_sde_gpu", {"sampler": "dpmpp_2m_sde_gpu"}),
    case("sampler-comfy-unknown-pass-through", "sampler_name=res_2s", {"sampler": "res_2s"}),
    case("sampler-unknown", "sampler: Fancy New", {}, warning=True),
    case("scheduler-a1111", "Schedule type: SGM Uniform", {"scheduler": "sgm_uniform"}),
    # Seeds.
    case("seed-number", "seed: 42", {"seed": 42}),
    case("seed-minus-one", "seed -1, 30 steps", {"steps": 30}),
    case("seed-random", "seed: random", {}),
    case("seed-random-words", "random seed, 30 steps", {"steps": 30}),
    case("seed-too-big", "seed 18446744073709551615", {}, warning=True),
    # Validation: 64..4096 and multiples of 8; steps 1..200; guidance 0..30.
    case("valid-edges", "64x4096, steps 1, cfg 0", {"width": 64, "height": 4096, "steps": 1, "guidance_scale": 0.0}),
    case("valid-upper-edges", "steps 200, cfg 30", {"steps": 200, "guidance_scale": 30.0}),
    case("invalid-width-small", "56x1024", {"height": 1024}, warning=True),
    case("invalid-height-big", "1024x4104", {"width": 1024}, warning=True),
    case("invalid-not-multiple-of-8", "1020x1024", {"height": 1024}, warning=True),
    case("invalid-steps-zero", "steps 0, 512x512", {"width": 512, "height": 512}, warning=True),
    case("invalid-steps-201", "201 steps", {}, warning=True),
    case("invalid-steps-fraction", "steps: 30.5", {}, warning=True),
    case("invalid-guidance", "cfg 30.5, 20 steps", {"steps": 20}, warning=True),
    case("invalid-guidance-negative", "guidance: -1", {}, warning=True),
    case("invalid-not-a-number", "steps: many, 512x512", {"width": 512, "height": 512}, warning=True),
    # Conflicts: two different values leave the field unset; the same value twice is fine.
    case("conflict-steps", "30 steps, steps: 20, cfg 7", {"guidance_scale": 7.0}, warning=True),
    case("conflict-sampler", "Euler, sampler: heun", {}, warning=True),
    case("repeat-same-value", "1024x1024, width: 1024", SQUARE),
    # Extras under normalised keys.
    case(
        "extras",
        "quality: hd, style=vivid, clip skip 2, batch size: 4, denoising strength: 0.6",
        {},
        {"quality": "hd", "style": "vivid", "clip_skip": 2, "batch_size": 4, "denoise": 0.6},
    ),
    case(
        "extras-lora",
        "<lora:watercolor_v2:0.8>, lora: ink:0.5",
        {},
        {"lora": [{"name": "watercolor_v2", "strength": 0.8}, {"name": "ink", "strength": 0.5}]},
    ),
    case(
        "extras-a1111-infotext",
        "a lighthouse at dusk\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
        "CFG scale: 7, Seed: 1, Size: 512x512, Model hash: abc123, Model: sd15, Clip skip: 2, Version: v1.6.0",
        {
            "width": 512,
            "height": 512,
            "steps": 20,
            "guidance_scale": 7.0,
            "sampler": "euler_ancestral",
            "seed": 1,
            "negative_prompt": "blurry",
            "model": "sd15",
        },
        {"model_hash": "abc123", "clip_skip": 2, "version": "v1.6.0", "unparsed": "a lighthouse at dusk"},
        warning=True,
    ),
    case(
        "extras-midjourney",
        "--ar 3:2 --no text, logo --style raw --s 250",
        {"width": 1216, "height": 832, "negative_prompt": "text, logo"},
        {"style": "raw", "stylize": 250},
    ),
    # Leftovers stay in extra_settings["unparsed"] with a warning.
    case("leftover", "1024x1024, hires fix please", SQUARE, {"unparsed": "hires fix please"}, warning=True),
    case("leftover-only", "like last time", {}, {"unparsed": "like last time"}, warning=True),
    # Empty text: nothing to do, no warning.
    case("empty-whitespace", "  \n ", {}),
]


def check(result, expected: dict) -> None:
    assert result.fields == expected["expect"], expected["id"]
    for field, value in result.fields.items():
        assert type(value) is type(expected["expect"][field]), (expected["id"], field)
    for key, value in expected["expect_extra"].items():
        assert key in result.extra_settings, (expected["id"], key)
        if value is not None:
            assert result.extra_settings[key] == value, (expected["id"], key)
    assert bool(result.warnings) == expected["expect_warning"], (expected["id"], result.warnings)
    if "unparsed" in result.extra_settings:
        assert any("unparsed" in w for w in result.warnings)


@pytest.mark.parametrize("expected", SAMPLE_CASES, ids=[c["id"] for c in SAMPLE_CASES])
def test_sample_line(expected):
    check(parse_legacy_text(expected["text"]), expected)


@pytest.mark.parametrize("expected", RULE_CASES, ids=[c["id"] for c in RULE_CASES])
def test_rule(expected):
    check(parse_legacy_text(expected["text"]), expected)


@pytest.mark.skipif(not SHARED_SAMPLE.exists(), reason="no ../shared/legacy-settings beside this checkout")
def test_sample_copy_is_current():
    assert SAMPLE.read_bytes() == SHARED_SAMPLE.read_bytes()


def test_rule_ids_are_unique_and_apart_from_the_sample():
    ids = [c["id"] for c in RULE_CASES + SAMPLE_CASES]
    assert len(ids) == len(set(ids))


def test_warnings_say_what_and_why():
    assert parse_legacy_text("1024x1024, steps: -5").warnings == ["Steps -5 is outside 1..200; not applied."]
    assert parse_legacy_text("1024x768, width=512").warnings == [
        "Width is given with different values (1024, 512); left unset."
    ]
    assert parse_legacy_text("1020x1024").warnings == ["Width 1020 is not a multiple of 8; not applied."]
    assert parse_legacy_text("1:1, 1344x768").warnings == [
        "Aspect '1:1' does not match the size 1344x768; the size wins."
    ]
    (warning,) = parse_legacy_text("portrait 768×1344 (turbo) 4 steps").warnings
    assert warning == "Not understood, kept in extra_settings['unparsed']: 'turbo'."


def test_status():
    assert parse_legacy_text("").status == "empty"
    assert parse_legacy_text("1024x1024").status == "parsed"
    assert parse_legacy_text("seed: -1").status == "parsed"  # understood: a random seed
    assert parse_legacy_text("1024x1024, steps: -5").status == "partial"
    assert parse_legacy_text("same as the blog header please").status == "unparsable"


def test_never_raises_on_odd_input():
    for text in ['{"width": ', "{]", "::::", "x" * 10000, '5" x 7" print', "--", "<lora:>", "\x00\x01", "1:0", None]:
        result = parse_legacy_text(text)
        assert isinstance(result.warnings, list)


def test_values_are_json_serialisable():
    for c in SAMPLE_CASES + RULE_CASES:
        result = parse_legacy_text(c["text"])
        json.dumps(result.as_dict())


def test_free_text_words_are_not_misread_as_keys():
    # "steps", "model" and "size" without a value must not swallow the words after them.
    result = parse_legacy_text("same model as the header, bigger size, more steps")
    assert result.fields == {}
    assert result.extra_settings == {"unparsed": "same model as the header, bigger size, more steps"}
