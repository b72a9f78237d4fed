"""The ImageNet class names and prompt templates are the published lists, entry for
entry.

The oracle is open_clip's copy of OpenAI's lists (``open_clip.zero_shot_metadata``);
golden entries and counts pin them independently, so a change to both copies would still
be noticed.
"""

import string

from open_clip import zero_shot_metadata

from clip_ref.imagenet import (
    IMAGENET_CLASSNAMES,
    IMAGENET_TEMPLATES,
    IMAGENET_TEMPLATES_7,
    TEMPLATE_SETS,
)
from clip_ref.zeroshot import check_template


def as_format_strings(callables):
    """open_clip stores templates as lambdas; calling one with '{}' recovers the
    format string."""
    return tuple(template("{}") for template in callables)


def test_classnames_equal_open_clip_entry_for_entry():
    assert isinstance(IMAGENET_CLASSNAMES, tuple)
    assert tuple(zero_shot_metadata.IMAGENET_CLASSNAMES) == IMAGENET_CLASSNAMES


def test_templates_equal_open_clip_entry_for_entry():
    assert (
        as_format_strings(zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES)
        == IMAGENET_TEMPLATES
    )
    # open_clip calls the 7-template subset from OpenAI's notebook
    # SIMPLE_IMAGENET_TEMPLATES.
    assert (
        as_format_strings(zero_shot_metadata.SIMPLE_IMAGENET_TEMPLATES)
        == IMAGENET_TEMPLATES_7
    )


def test_counts_and_golden_entries():
    assert len(IMAGENET_CLASSNAMES) == 1000
    assert len(IMAGENET_TEMPLATES) == 80
    assert len(IMAGENET_TEMPLATES_7) == 7
    assert IMAGENET_CLASSNAMES[:3] == ("tench", "goldfish", "great white shark")
    assert IMAGENET_CLASSNAMES[21] == "kite (bird of prey)"
    assert IMAGENET_CLASSNAMES[-1] == "toilet paper"
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}."
    assert IMAGENET_TEMPLATES[-1] == "a tattoo of the {}."
    assert IMAGENET_TEMPLATES_7 == (
        "itap of a {}.",
        "a bad photo of the {}.",
        "a origami {}.",
        "a photo of the large {}.",
        "a {} in a video game.",
        "art of the {}.",
        "a photo of the small {}.",
    )


def test_the_only_repeated_class_names_are_the_published_ones():
    repeated = {
        name: [i for i, n in enumerate(IMAGENET_CLASSNAMES) if n == name]
        for name in set(IMAGENET_CLASSNAMES)
        if IMAGENET_CLASSNAMES.count(name) > 1
    }
    assert repeated == {"missile": [657, 744], "sunglasses": [836, 837]}
    assert all(name == name.strip() and name for name in IMAGENET_CLASSNAMES)


def test_templates_are_unique_well_formed_and_the_subset_is_a_subset():
    assert len(set(IMAGENET_TEMPLATES)) == 80
    assert len(set(IMAGENET_TEMPLATES_7)) == 7
    assert set(IMAGENET_TEMPLATES_7) <= set(IMAGENET_TEMPLATES)
    for template in IMAGENET_TEMPLATES:
        check_template(template)  # exactly one bare {}
        fields = [
            name
            for _, name, _, _ in string.Formatter().parse(template)
            if name is not None
        ]
        assert fields == [""], template


def test_template_sets():
    assert TEMPLATE_SETS["name"] == ("{}",)
    # the paper's "A photo of a {label}." (§3.1.4)
    assert TEMPLATE_SETS["1"] == ("a photo of a {}.",)
    assert TEMPLATE_SETS["1"][0] in IMAGENET_TEMPLATES
    assert (
        TEMPLATE_SETS["7"] is IMAGENET_TEMPLATES_7
        and TEMPLATE_SETS["80"] is IMAGENET_TEMPLATES
    )
