from __future__ import annotations

import dataclasses

import pytest
import yaml

from pipeline.params import ConfigError, build, load_params
from pipeline.schema import Params
from pipeline.stage_params import StageParams, leaf_keys
from tests.conftest import REPO


def _raw():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_load(params):
    assert params.motion.tvl1.lambda_ == 0.15
    assert "motion.tvl1.lambda" in leaf_keys(params)


def test_unknown_key_fails_with_its_name():
    raw = _raw()
    raw["pretrain"]["epoch"] = 3
    with pytest.raises(ConfigError, match="pretrain.epoch"):
        build(Params, raw, "")


def test_wrong_type_fails_with_its_name():
    raw = _raw()
    raw["pretrain"]["intra_neg"] = "no"
    with pytest.raises(ConfigError, match="pretrain.intra_neg"):
        build(Params, raw, "")
    raw = _raw()
    raw["clip"]["length"] = 16.5
    with pytest.raises(ConfigError, match="clip.length"):
        build(Params, raw, "")


def test_missing_key_and_bad_choice_fail(tmp_path):
    raw = _raw()
    del raw["motion"]["tvl1"]["warps"]
    with pytest.raises(ConfigError, match="motion.tvl1.warps"):
        build(Params, raw, "")
    raw = _raw()
    raw["model"]["arch"] = "resnet50"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="model.arch"):
        load_params(path)


def test_stage_view_refuses_unlisted_keys_and_records_reads(params):
    read: set[str] = set()
    view = StageParams(params, frozenset({"frames", "motion.tvl1.lambda"}), read)
    assert view.frames.height == params.frames.height
    assert view.motion.tvl1.lambda_ == 0.15
    with pytest.raises(ConfigError, match="motion.bound"):
        view.motion.bound
    assert read == {"frames.height", "motion.tvl1.lambda"}


@pytest.mark.parametrize(
    "key, value",
    [
        ("pretrain.epochs", -1),
        ("pretrain.epochs", 0),
        ("finetune.epochs", -1),
        ("pretrain.batch_size", 0),
        ("features.batch_size", 0),
        ("finetune.batch_size", 0),
        ("pretrain.nce_t", 0),
        ("pretrain.nce_t", -0.1),
        ("pretrain.nce_k", 0),
        ("pretrain.nce_m", 1.0),
        ("motion.bound", 0),
        ("motion.bound", -20.0),
        ("pretrain.checkpoint_every", 0),
        ("retrieve.topk", []),
        ("retrieve.topk", [0, 5]),
        ("retrieve.topk", [1, 1]),
        ("finetune.dropout", 1.0),
        ("finetune.dropout", -0.1),
        ("finetune.val_videos", 0),
        ("clip.eval_clips", 0),
        ("runtime.workers", -1),
        ("frames.n_jobs", 0),
        ("motion.n_jobs", 0),
        ("datasets.demo.max_reject_share", 1.5),
        ("datasets.demo.max_reject_share", -0.1),
        ("pretrain.lr", 0),
        ("finetune.lr", -1.0),
        ("pretrain.lr", float("nan")),
        ("datasets.demo_transfer.split", 4),
        ("demo.demo.test_every", 1),
        ("frames.decode_timeout", 0),
        ("storage.jpeg_quality", 101),
        ("pretrain.lr_steps", [140, 120]),
        ("finetune.plateau_factor", 1.0),
        ("model.width", 0),
        ("pretrain.modality", "flow"),
    ],
)
def test_a_value_out_of_range_fails_at_start_with_its_key(tmp_path, key, value):
    """Every one of these used to run (and write outputs) before failing or producing NaN."""
    raw = _raw()
    *sections, leaf = key.split(".")
    node = raw
    for section in sections:
        node = node[section]
    node[leaf] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(path)


def test_topk_without_1_is_valid():
    raw = _raw()
    raw["retrieve"]["topk"] = [5, 10]
    assert build(Params, raw, "").retrieve.topk == [5, 10]


def test_choices_are_the_registries():
    """One definition of each choice: the Literal types in params.py name exactly what the
    registries build, so a new backbone or intra-negative is added in one place."""
    import typing

    from pipeline import schema as p
    from preprocess.formats import FORMATS
    from preprocess.shards import MODALITY_CHANNELS
    from train.classification import CLIP_SCORES
    from train.intra_negatives import INTRA_NEGATIVES
    from train.methods import METHODS
    from train.models import BACKBONES

    assert set(typing.get_args(p.Arch)) == set(BACKBONES)
    assert set(typing.get_args(p.IntraNegative)) == set(INTRA_NEGATIVES)
    assert set(typing.get_args(p.Modality)) == set(MODALITY_CHANNELS)
    assert set(typing.get_args(p.Method)) == set(METHODS)
    assert set(typing.get_args(p.DatasetFormat)) == set(FORMATS)
    assert set(typing.get_args(p.ClipScores)) == set(CLIP_SCORES)


def test_params_yaml_comments_list_every_choice():
    """A comment that lists a key's choices (``# r3d | r21d | ...``) lists exactly the schema's
    Literal, so params.yaml never advertises a subset of what the code accepts."""
    import re
    import typing

    from pipeline import schema

    hints = {}  # yaml leaf name -> its Literal choices, for every section
    for cls in (getattr(schema, n) for n in dir(schema)):
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            for name, hint in typing.get_type_hints(cls, include_extras=True).items():
                if typing.get_origin(hint) is typing.Literal:
                    hints.setdefault(name.rstrip("_"), set()).add(frozenset(typing.get_args(hint)))
    checked = 0
    for line in (REPO / "params.yaml").read_text().splitlines():
        m = re.match(r"\s*(\w+):\s*(\S+)\s*#\s*([a-z0-9_]+(?:\s*(?:\([^)]*\))?\s*\|\s*[a-z0-9_]+)+)", line)
        if not m or m.group(1) not in hints:
            continue
        listed = frozenset(re.findall(r"([a-z0-9_]+)(?:\s*\([^)]*\))?\s*(?:\||$)", re.sub(r"[;.].*", "", m.group(3))))
        assert listed in hints[m.group(1)], f"params.yaml {m.group(1)}: comment lists {sorted(listed)}"
        checked += 1
    assert checked >= 8  # the test reads the comments at all


@pytest.mark.parametrize("key", ["pretrain.modality", "finetune.modality"])
def test_flow_views_are_refused_when_no_flow_is_computed(tmp_path, key):
    raw = _raw()
    raw["motion"]["flow"] = "none"
    section, leaf = key.split(".")
    raw[section][leaf] = "u"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        ConfigError, match=rf"{key.replace('.', chr(92) + '.')}: u is a flow channel, but motion.flow is none"
    ):
        load_params(path)
    raw[section][leaf] = "res"
    path.write_text(yaml.safe_dump(raw))
    assert load_params(path).motion.flow == "none"


def _load_with(tmp_path, edit):
    raw = _raw()
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda r: r["pretrain"].update(datasets=["demo", "ucf101"]),
            r"pretrain\.datasets: 'ucf101' is not one of datasets",
        ),
        (lambda r: r["pretrain"].update(datasets=["demo", "demo"]), r"pretrain\.datasets: a dataset is listed twice"),
        (lambda r: r["pretrain"].update(datasets=[]), r"pretrain\.datasets: must not be empty"),
        (
            lambda r: r["evaluate"].update(datasets=["demo", "hmdb"]),
            r"evaluate\.datasets: 'hmdb' is not one of datasets",
        ),
        (lambda r: r["evaluate"].update(datasets=["demo", "demo"]), r"evaluate\.datasets: a dataset is listed twice"),
        (lambda r: r["evaluate"].update(datasets=[]), r"evaluate\.datasets: must not be empty"),
        (
            lambda r: r["datasets"].update({"UCF-101": r["datasets"]["demo"]}),
            r"datasets: 'UCF-101' is not a valid name",
        ),
        (lambda r: r.update(datasets={}), r"datasets: expected a non-empty mapping"),
        (
            lambda r: r["datasets"]["demo_transfer"].update(format="unlabeled"),
            r"evaluate\.datasets: demo_transfer is unlabeled .* remove it from evaluate\.datasets",
        ),
        (lambda r: r["datasets"]["demo"].pop("split"), r"missing key datasets\.demo\.split"),
    ],
)
def test_the_experiment_names_only_known_datasets(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        _load_with(tmp_path, edit)


def test_an_unlabeled_dataset_can_be_pretrained_on(tmp_path):
    def edit(raw):
        raw["datasets"]["frames_only"] = {**raw["datasets"]["demo"], "format": "unlabeled"}
        raw["pretrain"]["datasets"] = ["demo", "frames_only"]

    assert _load_with(tmp_path, edit).datasets["frames_only"].format == "unlabeled"


def test_the_old_single_pretraining_dataset_key_says_what_to_write(tmp_path):
    """``pretrain.dataset`` has no alias: one line names the list that replaces it."""

    def old_key(raw):
        del raw["pretrain"]["datasets"]
        raw["pretrain"]["dataset"] = "demo_transfer"

    with pytest.raises(ConfigError) as error:
        _load_with(tmp_path, old_key)
    assert str(error.value) == (
        "pretrain.dataset: replaced by pretrain.datasets, a list of dataset keys: write `datasets: [demo_transfer]`"
    )


def test_the_learning_curve_watches_a_labelled_dataset(tmp_path):
    """Pretraining on unlabelled video works, but the monitor must watch a labelled dataset."""

    def unlabelled_watched(raw):
        raw["datasets"]["frames_only"] = {**raw["datasets"]["demo"], "format": "unlabeled"}
        raw["pretrain"]["datasets"] = ["frames_only"]
        raw["monitor"]["dataset"] = "frames_only"

    with pytest.raises(ConfigError, match=r"monitor\.dataset: frames_only is unlabeled; .* \(demo, demo_transfer\)"):
        _load_with(tmp_path, unlabelled_watched)
    with pytest.raises(ConfigError, match=r"monitor\.dataset: 'ucf' is not one of datasets"):
        _load_with(tmp_path, lambda raw: raw["monitor"].update(dataset="ucf"))

    def unlabelled_pretraining(raw):
        raw["datasets"]["frames_only"] = {**raw["datasets"]["demo"], "format": "unlabeled"}
        raw["pretrain"]["datasets"] = ["frames_only"]
        raw["monitor"]["dataset"] = "demo_transfer"

    assert _load_with(tmp_path, unlabelled_pretraining).monitor.dataset == "demo_transfer"


def test_stage_view_of_a_named_dataset_records_its_dotted_keys(params):
    read: set[str] = set()
    view = StageParams(params, frozenset({"datasets.demo_transfer.root", "shards.ids"}), read)
    assert view.datasets["demo_transfer"].root == params.datasets["demo_transfer"].root
    with pytest.raises(ConfigError, match=r"datasets\.demo\.root"):
        view.datasets["demo"].root
    with pytest.raises(ConfigError, match=r"datasets\.hmdb51: no such entry"):
        view.datasets["hmdb51"]
    assert read == {"datasets.demo_transfer.root"}
    assert "datasets.demo.format" in leaf_keys(params) and "demo.demo_transfer.motions" in leaf_keys(params)


def test_each_list_decides_whether_it_may_be_empty(tmp_path):
    """``lr_steps: []`` is a constant learning rate (MultiStepLR takes it); an empty topk,
    shard list, demo class list or evaluation list has nothing to do and is refused."""
    constant = _load_with(tmp_path, lambda r: r["pretrain"].update(lr_steps=[]))
    assert constant.pretrain.lr_steps == []
    for section, key in (("retrieve", "topk"), ("shards", "ids")):
        with pytest.raises(ConfigError, match=rf"^{section}\.{key}: must not be empty$"):
            _load_with(tmp_path, lambda r, s=section, k=key: r[s].update({k: []}))
    with pytest.raises(ConfigError, match=r"^demo\.demo\.motions: must not be empty$"):
        _load_with(tmp_path, lambda r: r["demo"]["demo"].update(motions=[]))


def test_a_mapping_section_iterates_its_names_like_a_dict(params):
    view = StageParams(params, frozenset({"datasets"}), set())
    assert list(view.datasets) == list(params.datasets) == view.datasets.keys()
    assert {name: view.datasets[name].format for name in view.datasets} == {
        name: d.format for name, d in params.datasets.items()
    }


def _readme_terms() -> list[str]:
    """The README's headings and bold terms, lower-case, without a closing full stop."""
    import re

    text = (REPO / "README.md").read_text()
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)
    bold = re.findall(r"\*\*([^*]+)\*\*", text)
    return [t.strip().rstrip(".").lower() for t in headings + bold]


def test_every_readme_pointer_in_params_yaml_names_a_heading_or_bold_term():
    """params.yaml's comments send a reader to "README: X": X must be a heading (or its start,
    up to a colon) or a bold term there, and every docs/ page named must exist."""
    import re

    terms = _readme_terms()
    text = (REPO / "params.yaml").read_text()
    pointers = re.findall(r"README: ((?:\"[^\"]+\"(?: and )?)+|[\w' -]+)", text)
    assert len(pointers) >= 7
    for pointer in pointers:
        for name in re.findall(r"\"([^\"]+)\"", pointer) or [pointer]:
            name = name.strip().lower()
            assert any(t == name or t.startswith(name + ":") for t in terms), f"README has no {name!r}"
    for page in re.findall(r"docs/[\w-]+\.md", text):
        assert (REPO / page).is_file(), page


@pytest.mark.parametrize(
    "edit, message",
    [
        # Only the gallery stage, after the whole pipeline, found that no u features exist.
        (lambda r: (r["motion"].update(flow="none"), r["gallery"].update(feature="u")),
         r"gallery\.feature: 'u' is not a feature the features stage writes: rgb, res \(pretrain\.modality\) or merge"),
        (lambda r: r["gallery"].update(feature="v"), r"gallery\.feature: 'v'"),
        # Only a distributed stage, after preprocessing, found the missing port.
        (lambda r: r["launch"].update(rdzv_endpoint="nohost"), r"launch\.rdzv_endpoint: 'nohost' is not host:port"),
        (lambda r: r["launch"].update(rdzv_endpoint="host:99999"), r"launch\.rdzv_endpoint: 'host:99999'"),
    ],
)  # fmt: skip
def test_settings_a_late_stage_would_fail_on_are_refused_at_start(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        _load_with(tmp_path, edit)


def test_every_feature_the_features_stage_writes_is_a_valid_gallery_feature(tmp_path):
    for feature in ("rgb", "res", "merge"):
        assert _load_with(tmp_path, lambda r, f=feature: r["gallery"].update(feature=f)).gallery.feature == feature


def test_the_baseline_is_the_pretrain_section_without_intra_negatives_and_follows_the_method(params):
    from pipeline.variants import evaluated, pairs_of, variant_params

    assert params.pretrain.models == ["iic", "baseline"] and params.pretrain.intra_neg
    base = variant_params(params.pretrain, "baseline")
    assert not base.intra_neg and variant_params(params.pretrain, "iic") == params.pretrain
    differs = {f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(params.pretrain, f.name)}
    assert differs == {"intra_neg"}
    moco = dataclasses.replace(params.pretrain, method="moco")
    assert variant_params(moco, "baseline").method == "moco"
    assert evaluated(["iic"]) == ["iic", "random"]
    assert pairs_of(["iic", "random"]) == {"paired": ("iic", "random")}
    assert pairs_of(["iic", "baseline", "random"])["paired_baseline"] == ("iic", "baseline")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["pretrain"].update(models=["baseline"]), r"pretrain\.models: must name iic once"),
        (lambda r: r["pretrain"].update(models=["iic", "iic"]), r"pretrain\.models: must name iic once"),
        (lambda r: r["pretrain"].update(intra_neg=False), r"pretrain\.baseline\.intra_neg: False as in pretrain\.intra_neg"),
    ],
)  # fmt: skip
def test_a_baseline_that_would_be_iic_itself_is_refused(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        _load_with(tmp_path, edit)


def test_without_a_baseline_iic_may_be_pretrained_without_intra_negatives(tmp_path):
    loaded = _load_with(tmp_path, lambda r: r["pretrain"].update(models=["iic"], intra_neg=False))
    assert loaded.pretrain.models == ["iic"]
