"""Templates in scenario-table cells: only plain names, safe format specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ductaflow.errors import TableError, TemplateError
from ductaflow.tables.templating import MAX_WIDTH, fields, render

BRACES = "{}"


def test_fields_are_the_names_used_once_each_in_order():
    assert fields("runs/{stage}/{scenario}_{year:04d}/{scenario}.csv") == (
        "stage", "scenario", "year")


def test_text_and_literal_braces_have_no_fields():
    assert fields("plain text") == ()
    assert fields("{{not a field}}") == ()


def test_render_applies_the_format_spec():
    assert render("{scenario}_{year:04d}", {"scenario": "north", "year": 7}) == "north_0007"
    assert render("{growth:.1%}", {"growth": 0.025}) == "2.5%"


def test_render_keeps_literal_braces():
    assert render('{{"a": {n}}}', {"n": 1}) == '{"a": 1}'


def test_names_may_hold_spaces_and_dashes():
    assert render("{growth rate}-{max-year}", {"growth rate": 2, "max-year": 3}) == "2-3"


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{}", "positional"),
        ("{0}", "positional"),
        ("{ }", "positional"),
        ("{x.__class__}", "attribute access or indexing"),
        ("{x[0]}", "attribute access or indexing"),
        ("{x!r}", "conversion"),
        ("{x!s:>4}", "conversion"),
        ("{x:{y}}", "nested field"),
        ("{x:>999999999}", "too wide"),
        ("{x:.{p}f}", "nested field"),
        (f"{{x:.{MAX_WIDTH + 1}f}}", "too wide"),
        ("{x", "malformed"),
        ("x}", "malformed"),
        ("{x!}", "malformed"),
    ],
)
def test_unsafe_or_malformed_templates_are_refused_when_parsed(template, words):
    with pytest.raises(TemplateError, match=words) as caught:
        fields(template)
    assert caught.value.location is None  # the caller knows the cell


def test_the_widest_allowed_spec_renders():
    assert len(render(f"{{x:>{MAX_WIDTH}}}", {"x": 1})) == MAX_WIDTH


def test_an_unsafe_field_is_refused_even_after_an_unknown_one():
    with pytest.raises(TemplateError, match="attribute"):
        render("{unknown}{x.y}", {"x": 1})


def test_unknown_name_suggests_close_names():
    with pytest.raises(TemplateError, match=r"unknown field \{scenaro\}") as caught:
        render("{scenaro}_{year}", {"scenario": "a", "year": 2030, "stage": "prep"})
    assert caught.value.hint == "did you mean {scenario}?"
    assert str(caught.value) == "unknown field {scenaro} (did you mean {scenario}?)"


def test_unknown_name_without_a_close_match_lists_the_known_ones():
    with pytest.raises(TemplateError) as caught:
        render("{zzz}", {"year": 1, "growth": 2})
    assert caught.value.hint == "known fields: {growth}, {year}"


def test_a_spec_that_does_not_fit_the_value_names_the_field():
    with pytest.raises(TemplateError, match=r"field \{year\}.*'north' \(str\)"):
        render("{year:04d}", {"year": "north"})


def test_a_template_error_is_a_table_error():
    assert issubclass(TemplateError, TableError)


# ---------------------------------------------------------------- properties

no_braces = st.text(alphabet=st.characters(blacklist_characters=BRACES))
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
names = st.text(
    alphabet=st.characters(blacklist_characters="{}[].:!", blacklist_categories=("Cs",)),
    min_size=1,
).filter(lambda name: name.strip() and not name.isdigit())
scalars = st.one_of(st.integers(), st.floats(), st.text(), st.booleans())


@given(no_braces)
def test_text_without_braces_renders_to_itself(text):
    assert render(text, {}) == text
    assert fields(text) == ()


@given(any_text)
def test_doubled_braces_round_trip(text):
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert render(escaped, {}) == text
    assert fields(escaped) == ()


@given(names, scalars)
def test_any_known_name_renders_as_format_of_its_value(name, value):
    template = "{" + name + "}"
    assert fields(template) == (name,)
    assert render(template, {name: value}) == format(value)


@given(st.text(alphabet="{}:!.[]0123456789xyd<>=^ ,_%-+#eEfsnb"))
def test_any_string_renders_or_raises_a_template_error(text):
    values = {"x": 1.5, "y": "s", "d": 3, "0": 0}
    try:
        result = render(text, values)
    except TemplateError:
        return
    assert isinstance(result, str)
    assert len(result) <= len(text) * (MAX_WIDTH + 50)


@given(any_text)
def test_any_unicode_string_renders_or_raises_a_template_error(text):
    try:
        fields(text)
        render(text, {"x": 1})
    except TemplateError:
        pass
