from pathlib import Path
from textwrap import dedent

import pytest

from driftline.schemas import FeatureKind, ModelSpec, TaskType
from driftline.specfiles import SpecFileError, load_spec_files, load_specs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn-model.yaml"

ONE_YAML = """\
model_id: churn
model_version: "3"
task: classification
classes: [stays, leaves]
features:
  - {name: tenure, kind: numeric, minimum: 0}
  - {name: plan, kind: categorical, categories: [free, pro]}
"""

ONE_TOML = """\
model_id = "churn"
model_version = "3"
task = "classification"
classes = ["stays", "leaves"]

[[features]]
name = "tenure"
kind = "numeric"
minimum = 0

[[features]]
name = "plan"
kind = "categorical"
categories = ["free", "pro"]
"""

MANY_YAML = """\
models:
  - model_id: churn
    model_version: "3"
    task: classification
    features: [{name: tenure, kind: numeric}]
  - model_id: price
    model_version: "1"
    task: regression
    quality_window: 500
    features: []
"""

MANY_TOML = """\
[[models]]
model_id = "churn"
model_version = "3"
task = "classification"
features = [{name = "tenure", kind = "numeric"}]

[[models]]
model_id = "price"
model_version = "1"
task = "regression"
quality_window = 500
features = []
"""


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Work in a fresh directory, so messages name files as given: ``models.yaml: ...``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.write_text(dedent(text), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SpecFileError) as caught:
        load_specs(path)
    return str(caught.value)


def test_the_example_spec_loads():
    [spec] = load_specs(EXAMPLE)
    assert (spec.model_id, spec.model_version, spec.task) == (
        "churn",
        "3",
        TaskType.CLASSIFICATION,
    )
    assert {f.kind for f in spec.features} == set(FeatureKind)
    assert spec.feature("referral_code").categories == ["yes", "no"]


@pytest.mark.parametrize(("name", "text"), [("churn.yaml", ONE_YAML), ("churn.toml", ONE_TOML)])
def test_one_spec_per_file(in_tmp, name, text):
    [spec] = load_specs(write(name, text))
    assert spec.registry_key() == b'["churn","3"]'
    assert spec.feature("plan").categories == ["free", "pro"]
    assert spec.feature("tenure").minimum == 0.0


def test_yaml_and_toml_say_the_same(in_tmp):
    assert load_specs(write("a.yaml", ONE_YAML)) == load_specs(write("a.toml", ONE_TOML))
    assert load_specs(write("b.yml", MANY_YAML)) == load_specs(write("b.TOML", MANY_TOML))


@pytest.mark.parametrize(("name", "text"), [("all.yml", MANY_YAML), ("all.toml", MANY_TOML)])
def test_several_specs_under_models(in_tmp, name, text):
    specs = load_specs(write(name, text))
    assert [(s.model_id, s.model_version) for s in specs] == [("churn", "3"), ("price", "1")]
    assert all(isinstance(s, ModelSpec) for s in specs)
    assert specs[1].quality_window == 500


def test_a_yaml_merge_may_share_fields_between_specs(in_tmp):
    # Keys merged in from an anchor may be overridden: that is no duplicate key.
    merged = """\
    models:
      - &first {model_id: a, model_version: "1", task: regression, features: []}
      - {<<: *first, model_version: "2"}
    """
    specs = load_specs(write("merged.yaml", merged))
    assert [(s.model_id, s.model_version) for s in specs] == [("a", "1"), ("a", "2")]


# What goes wrong, and what the message says.


def test_an_invalid_field_names_file_model_and_field(in_tmp):
    path = write("models.yaml", ONE_YAML.replace("kind: categorical", "kind: text"))
    assert error_of(path) == (
        "models.yaml: model churn version 3: features.1.kind: "
        "Input should be 'numeric', 'categorical' or 'boolean'"
    )


def test_an_invalid_spec_in_a_list_is_named_by_its_place(in_tmp):
    path = write("models.yaml", MANY_YAML.replace("quality_window: 500", "quality_window: 0"))
    assert error_of(path) == (
        "models.yaml: models.1 (model price version 1): quality_window: "
        "Input should be greater than 0"
    )


def test_every_problem_of_every_spec_is_listed_one_per_line(in_tmp):
    path = write(
        "models.toml",
        """\
        [[models]]
        model_version = "1"
        task = "classification"
        features = []

        [[models]]
        model_id = "b"
        model_version = "1"
        task = "ranking"
        features = [{name = "x", kind = "numeric", minimum = 2, maximum = 1}]
        """,
    )
    assert error_of(path).splitlines() == [
        "models.toml: models.0: model_id: Field required",
        "models.toml: models.1 (model b version 1): task: "
        "Input should be 'classification' or 'regression'",
        "models.toml: models.1 (model b version 1): features.0: "
        "feature 'x': minimum 2.0 is above maximum 1.0",
    ]


def test_a_rule_across_fields_is_named_without_a_field(in_tmp):
    features = "  - {name: tenure, kind: numeric}\n"
    path = write("dup.yaml", ONE_YAML + features)
    assert error_of(path) == (
        "dup.yaml: model churn version 3: features listed more than once: tenure"
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            'model_version: "3"',
            "model_version: 3",
            "m.yaml: model churn version 3: model_version: "
            "Input should be a valid string (quote it to write it as text)",
        ),
        (
            "categories: [free, pro]",
            "categories: [yes, pro]",
            "m.yaml: model churn version 3: features.1.categories.0: Input should be a valid "
            "string (YAML reads yes, no, on, off, true and false as booleans: quote it)",
        ),
        (
            "minimum: 0",
            "minimum: 1e5",
            "m.yaml: model churn version 3: features.0.minimum: Input should be a valid number "
            "(YAML reads a number such as 1e5 as text: write 1.0e5)",
        ),
        (
            "minimum: 0",
            'minimum: "0"',
            "m.yaml: model churn version 3: features.0.minimum: Input should be a valid number "
            "(a number in quotes is text: leave the quotes out)",
        ),
        (
            "minimum: 0",
            "minimum: .nan",
            "m.yaml: model churn version 3: features.0.minimum: Input should be a finite number",
        ),
        (
            "task: classification",
            "task: classification\ndescription: 2026-01-01",
            "m.yaml: model churn version 3: description: Input should be a JSON value: "
            "a date (2026-01-01) has no JSON form; quote it if it is meant as text",
        ),
        (
            "task: classification",
            "task: classification\n1: one",
            "m.yaml: model churn version 3: Input should be a JSON value: "
            "a mapping key must be a string, not int 1 (quote it)",
        ),
        (
            "task: classification",
            "task: classification\nowner: team-a",
            "m.yaml: model churn version 3: owner: Extra inputs are not permitted",
        ),
    ],
)
def test_yaml_slips_are_explained(in_tmp, before, after, expected):
    assert before in ONE_YAML
    assert error_of(write("m.yaml", ONE_YAML.replace(before, after))) == expected


def test_toml_dates_are_refused_as_not_json(in_tmp):
    text = ONE_TOML.replace(
        'task = "classification"', 'task = "classification"\ndescription = 2026-01-01T10:00:00Z'
    )
    assert error_of(write("m.toml", text)) == (
        "m.toml: model churn version 3: description: Input should be a JSON value: "
        "a date and time (2026-01-01T10:00:00+00:00) has no JSON form; "
        "quote it if it is meant as text"
    )


def test_a_toml_number_in_quotes_is_refused(in_tmp):
    text = ONE_TOML.replace("minimum = 0", 'minimum = "0"')
    assert error_of(write("m.toml", text)) == (
        "m.toml: model churn version 3: features.0.minimum: Input should be a valid number "
        "(a number in quotes is text: leave the quotes out)"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("m.json", "{}", "m.json: unknown kind of file '.json'; spec files are YAML"),
        ("m", "{}", "m: unknown kind of file '(no suffix)'"),
        ("m.yaml", "", "m.yaml: the file is empty"),
        ("m.toml", "", "m.toml: the file is empty"),
        ("m.yaml", "model_id: [a\n", "m.yaml: not valid YAML: "),
        ("m.toml", "model_id = \n", "m.toml: not valid TOML: "),
        ("m.yaml", "- model_id: a\n", "m.yaml: the file holds a list; put several specs under"),
        ("m.yaml", "just text\n", "m.yaml: the file should hold a model spec, not text"),
        ("m.yaml", "models: []\n", "m.yaml: models: the list is empty"),
        ("m.yaml", "models: {a: 1}\n", "m.yaml: models: should be a list of model specs"),
        (
            "m.yaml",
            "models: []\nmodel_id: a\n",
            "m.yaml: a file with a models list holds nothing else at the top level "
            "(found also: model_id)",
        ),
        ("m.yaml", "models: [[1]]\n", "m.yaml: models.0: a model spec is a mapping of fields"),
        (
            "m.yaml",
            "model_id: a\nmodel_id: b\n",
            "m.yaml: not valid YAML: found the key 'model_id' twice (line 2, column 1)",
        ),
    ],
)
def test_files_that_hold_no_specs_say_why(in_tmp, name, text, expected):
    assert error_of(write(name, text)).startswith(expected)


def test_a_missing_or_undecodable_file_is_named(in_tmp):
    assert error_of(Path("absent.yaml")).startswith("absent.yaml: cannot read the file: ")
    Path("latin.yaml").write_bytes("model_id: caf\xe9\n".encode("latin-1"))
    assert error_of(Path("latin.yaml")).startswith("latin.yaml: not UTF-8 text")


def test_one_model_version_twice_in_a_file_is_refused(in_tmp):
    path = write(
        "m.yaml",
        MANY_YAML.replace("model_id: price", "model_id: churn").replace(
            'model_version: "1"', 'model_version: "3"'
        ),
    )
    assert error_of(path) == (
        "m.yaml: models.1 (model churn version 3): this model version is also defined at models.0"
    )


def test_several_files_are_checked_together(in_tmp):
    one, many = write("one.yaml", ONE_YAML), write("many.toml", MANY_TOML)
    loaded = load_spec_files([many, write("other.yaml", ONE_YAML.replace('"3"', '"4"'))])
    assert [(path.name, spec.model_version) for path, spec in loaded] == [
        ("many.toml", "3"),
        ("many.toml", "1"),
        ("other.yaml", "4"),
    ]
    bad = write("bad.yaml", ONE_YAML.replace("task: classification", "task: ranking"))
    with pytest.raises(SpecFileError) as caught:
        load_spec_files([one, bad, many])
    assert str(caught.value).splitlines() == [
        "bad.yaml: model churn version 3: task: Input should be 'classification' or 'regression'",
        "many.toml: model churn version 3 is also defined in one.yaml",
    ]


def test_a_spec_file_error_is_a_value_error():
    assert issubclass(SpecFileError, ValueError)
