"""A style's prompt template applied to section text."""

from __future__ import annotations

import pytest

from blogimages.models import ImageStyle


@pytest.mark.parametrize(
    ("template", "prompt", "expected"),
    [
        ("{prompt}, watercolour", "Boats on the sand.", "Boats on the sand, watercolour"),
        ("{prompt} ; ink", "Boats on the sand. ", "Boats on the sand ; ink"),
        ("{prompt}", "Boats on the sand.", "Boats on the sand."),
        ("watercolour of {prompt} at dusk", "boats.", "watercolour of boats. at dusk"),
        ("{prompt}, {prompt}", "Boats...", "Boats, Boats..."),
        ("photo: {prompt}", "Boats", "photo: Boats"),
    ],
)
def test_the_template_keeps_the_text_and_drops_a_full_stop_before_its_own_punctuation(template, prompt, expected):
    assert ImageStyle(name="s", prompt_template=template).apply(prompt) == expected
