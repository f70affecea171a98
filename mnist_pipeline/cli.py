"""mnist-pipeline: the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST, QMNIST) as a DVC +
Hydra pipeline in your own git repository, exported as npz, CSV, PNG and Parquet.

  mnist-pipeline datasets            list the datasets: images per split, classes, download, license
  mnist-pipeline formats             list the exports: options, defaults and the files they write
  mnist-pipeline init [--dir DIR]    adopt the pipeline here: stages, conf/, params.yaml, ignore entries
  mnist-pipeline init --upgrade      after upgrading the package: refresh them (re-runs what changed)
  mnist-pipeline params [OVERRIDE]   compose conf/ into params.yaml, as dvc exp run does
  mnist-pipeline unpack ZIP DIR      turn an imported images.zip into its PNG tree

Then: dvc exp run -S dataset=fashion_mnist builds a dataset under data/fashion_mnist/; in Python,
mnist_pipeline.load("fashion_mnist", split="train") returns its images, labels and class names.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from mnist_pipeline.adopt import WRITTEN, apply, enable_hydra, plan, resource
from mnist_pipeline.errors import PipelineError, exit_code
from mnist_pipeline.formats import validate_params
from mnist_pipeline.names import CONF_DIR
from mnist_pipeline.params import compose_params, composed
from mnist_pipeline.provenance import CODE_FILE, pipelines_flag, recorded_stages_dir, version
from mnist_pipeline.tree import unpack_zip


def init(repo: Path, stages_dir: str | None, upgrade: bool) -> str:
    if stages_dir is not None and (Path(stages_dir).is_absolute() or ".." in Path(stages_dir).parts):
        raise PipelineError(f"--dir: expected a folder inside this repository, found {stages_dir!r}")
    params = repo / "params.yaml"
    # Before an upgrade: params.yaml that is conf/'s composition follows conf/; one that is not
    # holds the team's choices (an applied experiment), which no composition can give back.
    state = _params_state(params, repo / CONF_DIR) if upgrade and params.exists() else None
    planned = plan(repo, stages_dir, upgrade)
    apply(planned)
    hydra = enable_hydra(repo)
    written = [str(item.path.relative_to(repo)) for item in planned if item.action in WRITTEN]
    conf_changed = any(item.action in WRITTEN for item in planned if item.path.is_relative_to(repo / CONF_DIR))
    (stages,) = [item.path for item in planned if item.path.name == "dvc.yaml"]
    flag = pipelines_flag(stages.parent.relative_to(repo).as_posix())
    composed_now, note = _compose_params_after_init(params, repo / CONF_DIR, state, conf_changed, flag)
    written += [composed_now] if composed_now else []
    notes = [note] if note else []
    written += [".dvc/config (hydra.enabled)"] if hydra else []
    for item in planned:
        if item.action == "differs":
            relative = item.path.relative_to(repo)
            notes.append(
                f"kept your edited {relative}, which this version changed too: merge its copy "
                f"({resource(CONF_DIR) / relative.relative_to(CONF_DIR)}) by hand, "
                "then `mnist-pipeline params [OVERRIDE ...]`"
            )
    run, exp_run = f"`dvc repro{flag}`", f"`dvc exp run{flag} -S dataset=...`"
    hint = f"then {run} (or {exp_run}) and commit" if not upgrade else f"commit, then {run}"
    return "; ".join([f"wrote {', '.join(written) or 'nothing new'}", *notes, hint])


def _compose_params_after_init(
    params: Path, conf: Path, state: str | None, conf_changed: bool, flag: str
) -> tuple[str | None, str | None]:
    """Compose ``params`` from ``conf`` on adoption, and on an upgrade that changed conf/ when it
    was conf/'s composition (``state``); (what was written, a note when it was kept). The note
    comes whenever it is not conf/'s composition, conf/ changed now or not: an upgrade that
    stopped after writing conf/ leaves one that no longer is, with nothing new to write."""
    if not params.exists():
        compose_params(params, [], conf)
        return "params.yaml", None
    if state in (None, "composed"):
        if not conf_changed:
            return None, None
        compose_params(params, [], conf)
        return "params.yaml (composed from the new conf/)", None
    why = "is not valid YAML" if state == "invalid" else "is not conf/'s composition (an applied experiment?)"
    return None, (
        f"kept params.yaml, which {why}: `dvc exp run{flag}` composes conf/ with its own -S, "
        f"`mnist-pipeline params [OVERRIDE ...]` composes it for `dvc repro{flag}`"
    )


def _params_state(params: Path, conf: Path) -> str:
    """What ``params`` is before an upgrade: ``composed`` (``conf``'s composition), ``invalid``
    (not YAML), or ``other`` (other values, an applied experiment's, or conf/ composes nothing)."""
    try:
        values = yaml.safe_load(params.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return "invalid"
    try:
        return "composed" if values == composed([], conf) else "other"
    except (PipelineError, HydraException, OmegaConfBaseException, OSError, yaml.YAMLError):
        return "other"


#: What each export writes under data/<dataset>/export/ (tests/test_cli.py checks it against the exports).
FORMAT_FILES = {
    "npz": "npz/<dataset>.npz: x_<split>, y_<split> (Keras' layout; np.load)",
    "csv": "csv/<split>.csv (<split>.csv.gz with gzip=true): label,pixel0,...; pd.read_csv(path, dtype='uint8') "
    "(header=None with header=false, dtype='float32' with scale=unit, no dtype with extended_labels=true: "
    "its label columns need int32)",
    "png": "png/images.zip: <split>/<class>/<index>.png (<split>/<label>_<index>.png and <split>/metadata.csv "
    "with layout=flat) and manifest.csv; the trees group unpacks it",
    "parquet": "parquet/<split>.parquet + parquet/README.md: image (PNG), label (+ pixels, label columns) and their "
    "Hugging Face card; datasets.load_dataset('data/<dataset>/export/parquet')",
}
#: What each tree (the `trees` group) unpacks, and where.
TREE_FILES = {
    "png": "images/<split>/<class>/<index>.png: torchvision ImageFolder, load_dataset('imagefolder', data_dir=...) "
    "(layout=flat: no class folders, so not ImageFolder; imagefolder reads the labels from <split>/metadata.csv)"
}


def conf_dir() -> Path:
    """This repository's conf/ when there is one, else the one the package carries."""
    return Path(CONF_DIR) if Path(CONF_DIR).is_dir() else resource(CONF_DIR)


def megabytes(size: int) -> str:
    """Two decimals under 10 MB (0.96 MB), one from there (11.6 MB, 202.8 MB)."""
    return f"{size / 1e6:,.{2 if size < 10**7 else 1}f} MB"


def download_size(dataset: dict[str, Any]) -> str:
    """What a build downloads: the files' published sizes (of the zip's members, for a container)."""
    files = {
        spec["file"]: spec.get("size")
        for split in dataset["splits"].values()
        for spec in (split["images"], split["labels"])
    }
    known = sum(size for size in files.values() if isinstance(size, int))
    unknown = sum(not isinstance(size, int) for size in files.values())
    text = megabytes(known) + (" of the zip" if dataset.get("container") else "")
    return text + (f" + {unknown} {'file' if unknown == 1 else 'files'} of unpublished size" if unknown else "")


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def describe_datasets(conf: Path) -> str:
    """One line per dataset of conf/dataset/, composed as dvc exp run would compose it and
    validated as the stages validate it (a bad fact is one line naming its key)."""
    names = sorted(path.stem for path in (conf / "dataset").glob("*.yaml"))
    raw = composed([f"dataset=[{','.join(names)}]"], conf)
    validate_params(raw, source=f"{conf / 'dataset'}/*.yaml composed")
    datasets: dict[str, Any] = raw["datasets"]
    rows = [["dataset", "images per split", "classes", "download", "license"]]
    for name in names:
        dataset = datasets[name]
        splits = " / ".join(f"{split} {spec['count']:,}" for split, spec in dataset["splits"].items())
        rows.append([name, splits, str(len(dataset["classes"])), download_size(dataset), str(dataset["license"])])
    return (
        table(rows)
        + "\n\nBuild one with dvc exp run -S dataset=<name> (several: -S 'dataset=[mnist,kmnist]');"
        + "\nits files go to data/<name>/ (exports in data/<name>/export/, the dataset card in export/README.md)."
    )


def option_comments(config_text: str, section: str) -> dict[str, str]:
    """The comment after each option of export.<section> in conf/config.yaml: its description."""
    comments: dict[str, str] = {}
    inside = False
    for line in config_text.splitlines():
        if line.startswith(f"  {section}:"):
            inside = True
        elif inside and line.startswith("    ") and ":" in line:
            key, _, rest = line.strip().partition(":")
            comments[key] = rest.partition("#")[2].strip()
        elif inside and line.strip():
            break
    return comments


def describe_formats(conf: Path) -> str:
    """Every export and tree: whether it is selected by default, its options with their defaults
    and descriptions (conf/config.yaml), and the files it writes."""
    text = (conf / "config.yaml").read_text(encoding="utf-8")
    config: dict[str, Any] = yaml.safe_load(text)
    groups: dict[str, Any] = {}
    for entry in config.get("defaults", []):
        if isinstance(entry, dict):
            groups.update(entry)
    lines = []
    for name in sorted(path.stem for path in (conf / "formats").glob("*.yaml")):
        default = "selected by default" if name in groups.get("formats", []) else "opt-in"
        lines += [f"{name} ({default}): data/<dataset>/export/{FORMAT_FILES.get(name, name + '/')}"]
        comments = option_comments(text, name)
        for key, value in (config.get("export", {}).get(name) or {}).items():
            shown = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            lines.append(f"    {name}.{key} = {shown}" + (f"    {comments[key]}" if comments.get(key) else ""))
    for name in sorted(path.stem for path in (conf / "trees").glob("*.yaml")) if (conf / "trees").is_dir() else []:
        default = "selected by default" if name in groups.get("trees", []) else "opt-in"
        lines.append(f"tree {name} ({default}): data/<dataset>/export/{TREE_FILES.get(name, name)}")
    return "\n".join(
        [
            *lines,
            "",
            "Pick exports with -S 'formats=[npz,csv,png,parquet]', trees with -S 'trees=[png]', an option with",
            "-S export.csv.header=false (every dataset) or -S '++datasets.<name>.export.csv.header=false' (one).",
        ]
    )


def write_params(overrides: list[str]) -> str:
    if not Path(CONF_DIR).is_dir():
        raise PipelineError("conf/: not found here; adopt the pipeline first with `mnist-pipeline init`")
    compose_params(Path("params.yaml"), overrides)
    composition = f"conf/ with {' '.join(overrides)}" if overrides else "conf/"
    flag = pipelines_flag(recorded_stages_dir(Path(CODE_FILE)))
    return f"wrote params.yaml ({composition}); `dvc repro{flag}` runs what changed"


def unpack(archive: Path, tree: Path) -> str:
    # unpack_zip refuses a foreign tree folder itself (tree.refuse_foreign_target)
    return f"{unpack_zip(archive, tree):,} files -> {tree}"


#: Each command: the parsed arguments -> the line it prints.
COMMANDS: dict[str, Callable[[argparse.Namespace], str]] = {
    "datasets": lambda _args: describe_datasets(conf_dir()),
    "formats": lambda _args: describe_formats(conf_dir()),
    "init": lambda args: init(Path.cwd(), args.dir, args.upgrade),
    "params": lambda args: write_params(args.overrides),
    "unpack": lambda args: unpack(args.archive, args.tree),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("datasets", help="list the datasets of conf/dataset/: splits, classes, download, license")
    commands.add_parser("formats", help="list the exports: options, defaults and the files each writes")
    adopt = commands.add_parser("init", help="adopt the pipeline in this git + DVC repository")
    adopt.add_argument(
        "--dir",
        metavar="DIR",
        help="folder for the pipeline's dvc.yaml (default: the root one; on --upgrade, the one init used)",
    )
    adopt.add_argument("--upgrade", action="store_true", help=f"refresh the files {CODE_FILE} records after an upgrade")
    params = commands.add_parser("params", help="compose conf/ into params.yaml")
    params.add_argument(
        "overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides, as dvc exp run -S takes them: dataset=kmnist"
    )
    unpacking = commands.add_parser("unpack", help="unpack an images.zip into its tree")
    unpacking.add_argument("archive", type=Path, help="an export/png/images.zip (e.g. from `dvc import`)")
    unpacking.add_argument(
        "tree", type=Path, help="the folder to create (absent, empty, or a tree this command wrote before)"
    )
    args = parser.parse_args(argv)
    # yaml.YAMLError: Hydra reading a conf/ file that is not YAML names it in the message. On
    # Ctrl-C, each file is replaced whole or not at all: every write goes to a scratch file first.
    return exit_code(
        lambda: print(COMMANDS[args.command](args)),
        lambda line: print(f"mnist-pipeline: {line}", file=sys.stderr),
        (HydraException, OmegaConfBaseException, yaml.YAMLError),
    )


if __name__ == "__main__":
    raise SystemExit(main())
