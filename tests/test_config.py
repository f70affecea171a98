"""conf/ is the one source: params.yaml must equal its composition, every dataset of the family
composes and validates, and bad params are rejected before any work with the key, what was
expected and what was found."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.errors import MissingConfigException

from mnist_pipeline import check, views
from mnist_pipeline.config import MAX_PARAMS_BYTES, MAX_WORKERS, export_options
from mnist_pipeline.csv_options import CSV, LabelPosition
from mnist_pipeline.errors import ConfigError
from mnist_pipeline.formats import FORMATS, load_params, validate_params
from mnist_pipeline.names import KNOWN_FORMATS
from mnist_pipeline.npz_options import NPZ
from mnist_pipeline.params import compose_params
from mnist_pipeline.provenance import code_digest
from tests.support.data import default_params, write_params
from tests.support.repos import PROJECT_ROOT, indexed

#: The check stage reads the conf/ params.yaml was composed from; these tests use the shipped one.
SHIPPED_CONF = ["--conf", str(PROJECT_ROOT / "conf")]

FAMILY = sorted(path.stem for path in (PROJECT_ROOT / "conf" / "dataset").glob("*.yaml"))


def composed(tmp_path: Path, *overrides: str) -> dict[str, Any]:
    out = tmp_path / "params.yaml"
    compose_params(out, list(overrides), PROJECT_ROOT / "conf")
    loaded: dict[str, Any] = yaml.safe_load(out.read_text())
    return loaded


def test_committed_params_equal_the_composition_of_conf(tmp_path: Path) -> None:
    out = tmp_path / "params.yaml"
    compose_params(out, [], PROJECT_ROOT / "conf")
    committed = indexed("params.yaml") or (PROJECT_ROOT / "params.yaml").read_bytes()
    assert out.read_bytes() == committed, (
        "the committed params.yaml is not conf/'s composition: put a choice that should persist in conf/ "
        '(README "The daily loop"), then `make params` and commit params.yaml'
    )


def test_committed_params_are_valid() -> None:
    """Whatever choice is committed (an applied experiment too): it passes every rule."""
    committed = indexed("params.yaml") or (PROJECT_ROOT / "params.yaml").read_bytes()
    validate_params(yaml.safe_load(committed), source="params.yaml (committed)")


def test_conf_ships_mnist_with_npz_csv_and_png() -> None:
    params = validate_params(default_params(), source="conf/ composed")
    assert list(params.datasets) == ["mnist"]
    assert list(params.export.formats) == ["npz", "csv", "png"]
    assert params.dataset("mnist").mirrors[0].startswith("https://ossci-datasets.s3.amazonaws.com/")


def test_family_is_complete() -> None:
    expected = {"mnist", "fashion_mnist", "kmnist", "qmnist", "qmnist_subsets", "qmnist_nist"}
    expected |= {f"emnist_{split}" for split in ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")}
    assert set(FAMILY) == expected


@pytest.mark.parametrize("name", FAMILY)
def test_every_dataset_composes_and_validates(tmp_path: Path, name: str) -> None:
    raw = composed(tmp_path, f"dataset={name}", "formats=[npz,csv,png,parquet]")
    params = validate_params(raw, source=name)
    dataset = params.dataset(name)
    for split in dataset.splits.values():
        for spec in (split.images, split.labels):
            assert spec.md5 or spec.sha256, f"{name}: {spec.file} has no published digest"
            # IDX payload sizes follow from the counts: header + rows (a slice reads part of a file).
            if spec is split.images and split.rows is None:
                assert spec.payload_size == 16 + split.count * 28 * 28
    if dataset.container is not None:
        assert all(spec.member and spec.member.startswith("gzip/") for spec in dataset.files())
    view = views.dataset_view(raw, name, dict.fromkeys(views.STAGE_PARAMS, ""))
    for module in views.STAGE_PARAMS:  # every key a stage tracks exists
        assert views.tracked_params(view, name, module)[f"code.{module}"] == ""


def test_emnist_shares_its_zip_and_turns_images_upright(tmp_path: Path) -> None:
    raw = composed(tmp_path, "dataset=[emnist_letters,emnist_byclass]")
    params = validate_params(raw)
    letters, byclass = params.dataset("emnist_letters"), params.dataset("emnist_byclass")
    assert letters.container == byclass.container and letters.container is not None
    assert letters.container.size == 561_753_746
    assert letters.transposed and byclass.transposed
    assert letters.labels.offset == 1 and len(letters.classes) == 26 and letters.classes[0] == "A/a"
    assert [split.count for split in letters.splits.values()] == [124_800, 20_800]
    assert len(byclass.classes) == 62 and byclass.labels.offset == 0


def test_several_datasets_in_one_composition(tmp_path: Path) -> None:
    raw = composed(tmp_path, "dataset=[mnist,fashion_mnist]")
    assert list(raw["datasets"]) == ["mnist", "fashion_mnist"]
    assert raw["datasets"]["fashion_mnist"]["classes"][0] == "T-shirt/top"


def test_format_group_selects_exports(tmp_path: Path) -> None:
    params = composed(tmp_path, "formats=[npz,parquet]")
    assert params["export"]["formats"] == {"npz": {}, "parquet": {}}
    assert params["export"]["trees"] == {}


def test_unknown_dataset_names_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigException, match="fashion_mnist"):
        composed(tmp_path, "dataset=nosuch")


def test_unknown_format_is_named(tmp_path: Path) -> None:
    """Hydra names the missing group file of a list (without the options: `mnist-pipeline formats`)."""
    with pytest.raises(MissingConfigException, match=r"^In 'config': Could not load 'formats/nosuch'\."):
        composed(tmp_path, "formats=[npz,nosuch]")


def with_change(path: str, value: Any) -> dict[str, Any]:
    params = default_params()
    *parents, leaf = path.split(".")
    node = params
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return params


MNIST = "datasets.mnist"
BAD_VALUES = [
    (
        "export.npz.validation_size",
        "abc",
        "export.npz.validation_size: Value 'abc' of type 'str' could not be converted",
    ),
    ("export.csv.validation_size", -5, "export.csv.validation_size: expected >= 0, found -5"),
    ("export.npz.validation_size", 60000, "export.npz.validation_size: expected fewer than the 60000 training images"),
    ("export.npz.scale", "huge", "export.npz.scale: Invalid value 'huge', expected one of [none, unit, centered"),
    ("export.npz.scale", "unit", "export.npz.scale: 'unit' needs export.npz.dtype float32"),
    ("export.workers", 300, f"export.workers: expected 1 to {MAX_WORKERS} (4 x cores), found 300"),
    ("export.workers", 0, "export.workers: expected 1 to"),
    (
        "export.formats",
        {"npz": {}, "tiff": {}},
        "export.formats: unknown format 'tiff'; allowed: csv, npz, parquet, png",
    ),
    ("export.trees", {"png": {}, "tiff": {}}, "export.trees: a tree needs its archive format selected"),
    (
        "export.build.npz",
        ["mnist", "fashion_mnist"],
        "export.build.npz: expected selected datasets only (mnist; the formats group writes it), found 'fashion_mnist'",
    ),
    (f"{MNIST}.mirrors.0", "ftp://example.org/mnist/", f"{MNIST}.mirrors.0: unsupported scheme 'ftp'"),
    (f"{MNIST}.mirrors.0", "http://[::1/", f"{MNIST}.mirrors.0: not a valid URL"),
    (f"{MNIST}.mirrors.0", "http://:80/x", f"{MNIST}.mirrors.0: expected a host name"),
    (f"{MNIST}.mirrors.0", "http://user:hunter2@example.org/", f"{MNIST}.mirrors.0: credentials in a mirror URL"),
    (f"{MNIST}.mirrors.0", "http://example.org/\nx", f"{MNIST}.mirrors.0: expected one line of printable"),
    (f"{MNIST}.splits.train.images.file", "../../x", f"{MNIST}.splits.train.images.file: expected a plain file name"),
    (f"{MNIST}.splits.train.images.file", "/etc/passwd", "expected a plain file name, found '/etc/passwd'"),
    (f"{MNIST}.splits.train.images.file", "a\x00b", "expected a plain file name"),
    (f"{MNIST}.splits.train.images.file", "..", "expected a plain file name"),
    (f"{MNIST}.splits.test.labels.sha256", "abc", f"{MNIST}.splits.test.labels.sha256: expected 64 lower-case hex"),
    (f"{MNIST}.splits.test.labels.md5", None, None),  # sha256 remains: still valid
    (f"{MNIST}.splits.test.count", 0, f"{MNIST}.splits.test.count: expected images > 0, found 0"),
    (f"{MNIST}.classes", [], f"{MNIST}.classes: expected 1 to 256 class names, found 0"),
    (f"{MNIST}.classes.3", "three\nforged,row", f"{MNIST}.classes.3: expected 1 to 64 printable characters"),
    (f"{MNIST}.image_shape", [28, 0], f"{MNIST}.image_shape: expected [rows, cols] of 1 to 4096"),
    (f"{MNIST}.labels.offset", -1, f"{MNIST}.labels.offset: expected 0 to 256"),
    ("download.timeout", 0, "download.timeout: expected seconds in (0, 3600], found 0.0"),
    ("download.timeout", math.nan, "download.timeout: expected seconds in (0, 3600], found nan"),
    ("download.timeout", math.inf, "download.timeout: expected seconds in (0, 3600], found inf"),
    ("download.backoff", -1, "download.backoff: expected seconds in"),
    ("download.retries", 1000, "download.retries: expected 0 to 10, found 1000"),
    ("download.retries", "many", "download.retries: Value 'many' of type 'str' could not be converted to Integer"),
    ("download.min_rate", 0, "download.min_rate: expected bytes per second"),
    ("download.user_agent", "x\r\nX-Evil: 1", "download.user_agent: expected 1 to 256 printable ASCII characters"),
    ("download.user_agent", "caf\u00e9", "download.user_agent: expected 1 to 256 printable ASCII"),
    ("report.samples_per_class", 0, "report.samples_per_class: expected 1 to 100, found 0"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_VALUES, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD_VALUES])
def test_bad_value_is_rejected_naming_key(path: str, value: Any, message: str | None) -> None:
    params = with_change(path, value)
    if message is None:
        validate_params(params)
        return
    with pytest.raises(ConfigError) as caught:
        validate_params(params, source="params.yaml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value).strip()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../escaped", "datasets.../../escaped: expected a dataset name matching"),
        ("Mnist", "expected a dataset name matching"),
        ("a-b", "expected a dataset name matching"),
        ("params", "datasets.params: expected another dataset name: data/params/ holds every dataset's params views"),
    ],
)
def test_dataset_names_become_folders_only_when_plain(name: str, message: str) -> None:
    params = default_params()
    params["datasets"] = {name: params["datasets"]["mnist"]}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        validate_params(params)


@pytest.mark.parametrize("split", ["../../../../../ESCAPED", "/tmp/abs", "val", "te st", ""])
def test_split_names_become_file_names_only_when_plain(split: str) -> None:
    params = default_params()
    splits = params["datasets"]["mnist"]["splits"]
    splits[split] = splits.pop("test")
    with pytest.raises(ConfigError, match=r"datasets\.mnist\.splits"):
        validate_params(params)


def test_a_split_named_all_is_refused_for_hugging_face() -> None:
    params = default_params()
    splits = params["datasets"]["mnist"]["splits"]
    splits["all"] = splits.pop("test")
    expected = "datasets.mnist.splits.all: 'all' is Hugging Face's name for all splits at once, which it refuses as one"
    with pytest.raises(ConfigError, match=f"^params: {re.escape(expected)}$"):
        validate_params(params)


def test_per_dataset_export_override_is_validated() -> None:
    params = with_change(f"{MNIST}.export", {"csv": {"header": "sometimes"}})
    with pytest.raises(ConfigError, match=r"datasets\.mnist\.export\.csv\.header"):
        validate_params(params)
    params = with_change(f"{MNIST}.export", {"csv": {"header": False}})
    loaded = validate_params(params)
    assert export_options(loaded, "mnist", CSV).header is False and loaded.export.csv["header"] is True


@pytest.mark.parametrize(
    ("overrides", "found"),
    [
        (["++datasets.fashion_mnist.export.csv.header=false"], "export"),
        (["++datasets.fashion_mnist.mirrors=[https://example.org/f/]"], "mirrors"),
        (
            ["++datasets.fashion_mnist.mirrors=[https://example.org/f/]", "++datasets.fashion_mnist.export.npz={}"],
            "export, mirrors",
        ),
    ],
    ids=["export", "mirrors", "both"],
)
def test_overrides_of_an_unselected_dataset_say_to_select_it(tmp_path: Path, overrides: list[str], found: str) -> None:
    raw = composed(tmp_path, *overrides)
    expected = (
        f"params.yaml: datasets.fashion_mnist: expected a selected dataset, found only overrides ({found}) for "
        "a dataset this run does not select; select it with -S 'dataset=[...,fashion_mnist]'"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        validate_params(raw, source="params.yaml")


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"export\.csv\.heder: Key 'heder' not in 'CsvOptions'"):
        validate_params(with_change("export.csv.heder", False))


def test_missing_key_is_rejected() -> None:
    params = default_params()
    del params["download"]["timeout"]
    with pytest.raises(ConfigError, match=r"download\.timeout: .*missing mandatory value: timeout"):
        validate_params(params)


def test_check_stage_writes_one_view_per_dataset_and_keeps_them_on_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each view is params.yaml with one dataset (in ``datasets`` and ``export.build``), every
    shared section as it was, and each stage module's code digest, beside a folder of what each
    stage tracks; a refused check leaves the previous views byte for byte, and a dataset no
    longer selected leaves no view."""
    written_to = tmp_path / "data" / "views"
    raw = composed(tmp_path, "dataset=[mnist,fashion_mnist]", "formats=[npz,parquet]")
    assert check.main([*SHIPPED_CONF, "--params", str(write_params(tmp_path / "two", raw)), str(written_to)]) == 0
    written = {view.name: view.read_bytes() for view in written_to.iterdir() if view.is_file()}
    assert sorted(written) == ["fashion_mnist.json", "mnist.json"]
    assert sorted(folder.name for folder in written_to.iterdir() if folder.is_dir()) == ["fashion_mnist", "mnist"]
    before = {path: path.read_bytes() for path in written_to.rglob("*") if path.is_file()}
    for name in ("mnist", "fashion_mnist"):
        view = yaml.safe_load(written[f"{name}.json"])
        assert view["datasets"] == {name: raw["datasets"][name]}
        assert view["export"]["build"] == {"npz": [name], "csv": [], "png": [], "parquet": [name]}
        assert view["sha256"] == {fact: views.fact_digest(raw["datasets"][name][fact]) for fact in views.BULKY_FACTS}
        assert {key: value for key, value in view.items() if key not in ("datasets", "export", "code", "sha256")} == {
            key: value for key, value in raw.items() if key not in ("datasets", "export")
        }
        assert view["code"] == {module: code_digest(f"mnist_pipeline.{module}") for module in views.STAGE_PARAMS}
        assert {k: v for k, v in view["export"].items() if k != "build"} == {
            k: v for k, v in raw["export"].items() if k != "build"
        }
        assert list(load_params(written_to / f"{name}.json").datasets) == [name]
        for module in views.STAGE_PARAMS:
            tracked = json.loads(views.tracked_file(name, module, written_to).read_text())
            assert tracked == views.tracked_params(view, name, module)

    bad = write_params(tmp_path / "bad", with_change("export.npz.validation_size", -5))
    assert check.main([*SHIPPED_CONF, "--params", str(bad), str(written_to)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("check: error: ") and "export.npz.validation_size: expected >= 0, found -5" in line
    assert {path: path.read_bytes() for path in written_to.rglob("*") if path.is_file()} == before

    assert (
        check.main([*SHIPPED_CONF, "--params", str(write_params(tmp_path / "one", default_params())), str(written_to)])
        == 0
    )
    assert sorted(view.name for view in written_to.iterdir()) == ["mnist", "mnist.json"]


def test_payload_mode_needs_published_payload_digests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = composed(tmp_path, "dataset=emnist_letters", "verify.archive=payload")
    code = check.main(
        [*SHIPPED_CONF, "--params", str(write_params(tmp_path / "p", raw)), str(tmp_path / "data" / "marker")]
    )
    assert code == 1
    assert "verify.archive: 'payload' needs a published payload digest" in capsys.readouterr().err


def test_missing_params_file_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main([*SHIPPED_CONF, "--params", str(tmp_path / "nope.yaml"), str(tmp_path / "data" / "marker")]) == 1
    err = capsys.readouterr().err
    assert "nope.yaml: not found; compose it from conf/ with `dvc exp run` or `mnist-pipeline params`" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("mirror", "message"),
    [
        ("https://example.org/mnist/?token=s3cr3t", "a query string or fragment in a mirror URL"),
        ("https://example.org/mnist/#s3cr3t", "a query string or fragment in a mirror URL"),
        ("https://example.org/mnist/?", "a query string or fragment in a mirror URL"),
        ("user:s3cr3t@example.org/mnist/", "expected a URL with a scheme or a local folder, found user info"),
        ("u:s3cr3t@example.org/", "expected a URL with a scheme or a local folder, found user info"),
    ],
)
def test_mirror_secrets_are_refused_and_never_printed(mirror: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_params(with_change(f"{MNIST}.mirrors.0", mirror), source="params.yaml")
    text = str(caught.value)
    assert f"{MNIST}.mirrors.0: {message}" in text and "~/.netrc" in text
    assert "s3cr3t" not in text and "\n" not in text


BILLION_LAUGHS = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_alias_bomb_params_are_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 400
    started = time.monotonic()
    assert check.main([*SHIPPED_CONF, "--params", str(path), str(tmp_path / "data" / "marker")]) == 1
    assert time.monotonic() - started < 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{path}: line 1: expected plain YAML values, found an anchor or alias" in line


def test_oversized_params_are_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# padding\n" * (MAX_PARAMS_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=f"expected at most {MAX_PARAMS_BYTES:,} bytes of params"):
        load_params(path)


def test_dataset_options_are_merged_and_typed_by_their_format() -> None:
    params = with_change(f"{MNIST}.export", {"csv": {"gzip": True}, "npz": {"validation_size": 10}})
    loaded = validate_params(params)
    csv = export_options(loaded, "mnist", CSV)
    assert csv.gzip is True and csv.header is True and csv.label_position is LabelPosition.first
    assert export_options(loaded, "mnist", NPZ).validation_size == 10
    assert loaded.export.csv["gzip"] is False and "png" not in loaded.dataset("mnist").export


def test_the_formats_are_the_known_formats() -> None:
    assert tuple(fmt.name for fmt in FORMATS) == KNOWN_FORMATS


def test_a_dataset_value_is_reported_under_its_own_key() -> None:
    with pytest.raises(ConfigError, match=r"datasets\.mnist\.export\.npz\.validation_size: expected fewer than"):
        validate_params(with_change(f"{MNIST}.export", {"npz": {"validation_size": 60000}}))
    # The same bad value in both places: the dataset's own is the one this dataset reads.
    both = with_change(f"{MNIST}.export", {"csv": {"decimals": 11}})
    both["export"]["csv"]["decimals"] = 11
    with pytest.raises(ConfigError, match=r"^params: datasets\.mnist\.export\.csv\.decimals: expected 0 to 10"):
        validate_params(both)
    expected = "datasets.mnist.export.workers: expected a format (csv, npz, parquet, png), found 'workers'"
    with pytest.raises(ConfigError, match=f"^params: {re.escape(expected)}$"):
        validate_params(with_change(f"{MNIST}.export", {"workers": 3}))
