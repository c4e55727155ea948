import numpy as np
import pytest

from evaluate.feature_file import read_feature_file
from evaluate.gallery import HIT, MISS, gallery_stage, neighbour_rows, pick_queries
from pipeline.errors import ConfigError
from pipeline.schema import GalleryParams
from preprocess.shards import ShardReader
from tests.shards_fixture import make_tiny_shards


def test_queries_go_round_robin_over_the_classes():
    labels = np.array([0, 0, 1, 1, 2, 0, 1, 2, 2])
    test = np.array([False, True, True, True, False, True, False, True, True])
    # Test rows by class: 0 -> [1, 5], 1 -> [2, 3], 2 -> [7, 8].
    assert pick_queries(labels, test, 4) == [1, 2, 7, 5]
    assert sorted(pick_queries(labels, test, 100)) == [1, 2, 3, 5, 7, 8]


@pytest.fixture()
def feature_files(tmp_path):
    """Two models' features on the tiny shards: 'iic' puts each test video on a train video of its
    class, 'random' on a train video of the next class."""
    folder = make_tiny_shards(tmp_path / "shards")
    reader = ShardReader(folder / "frames", folder / "motion", [0])
    ids = sorted(reader.videos)
    labels = np.array([reader.videos[v]["label"] for v in ids])
    split = np.array([reader.videos[v]["split"] for v in ids])
    files = {}
    for model, shift in (("iic", 0), ("random", 1)):
        rgb = np.eye(3, dtype=np.float32)[(labels + np.where(split == "test", shift, 0)) % 3] + 0.01
        path = tmp_path / f"{model}.npz"
        np.savez(
            path, ids=np.array(ids), labels=labels, split=split, rgb=rgb, view2=rgb, view2_modality=np.array("res")
        )
        files[model] = path
    return reader, files


def test_neighbours_and_the_image_mark_hits_green_and_misses_red(feature_files, tmp_path):
    reader, files = feature_files
    data = read_feature_file(files["iic"])
    queries = pick_queries(data.labels, data.test, 3)
    found = neighbour_rows(data, "rgb", queries, 2)
    assert (data.labels[found] == data.labels[queries][:, None]).all() and data.train[found].all()
    out = tmp_path / "gallery.png"
    image = gallery_stage(files, reader, ["C0", "C1", "C2"], GalleryParams(queries=3, neighbours=2, feature="rgb"), out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    tile_h, tile_w = 2 * 36 + 4, 36 + 4  # rgb over res, a 2-px border
    assert image.shape[1] == tile_w + 2 * (8 + 2 * tile_w)  # the query, then 2 neighbours per model
    top_left = [tuple(image[16 + 16, x]) for x in (tile_w + 8, tile_w + 8 + 2 * tile_w + 8)]
    assert top_left == [HIT, MISS]  # the first neighbour's border: iic hits, random misses
    assert image.shape[0] == 16 + 3 * (16 + tile_h)


def test_an_unknown_feature_set_is_a_config_error(feature_files, tmp_path):
    reader, files = feature_files
    with pytest.raises(ConfigError, match="gallery.feature: 'u'"):
        gallery_stage(files, reader, ["C0", "C1", "C2"], GalleryParams(3, 2, "u"), tmp_path / "g.png")
