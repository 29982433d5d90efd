"""Training pairs loaded by MMV_Im2Im 0.8.1's own data-loading code, in its own pinned environment.

Its package ``__init__`` imports the whole trainer (lightning, gudhi, numba, ...), which its data loading
does not need; so the test imports the two modules the data module uses (``utils.misc`` for the dataset
lists, ``utils.for_transform`` for ``LoadImaged`` with MMV_Im2Im's ``monai_bio_reader``) without running that
``__init__``. Everything they do is MMV_Im2Im's unmodified code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annotation.export import PAIR_PREFERENCE, choose_labels, export
from annotation.project import Project
from annotation.setup import init_project
from im2im_engine import io
from tests.toolenv import MMV_IM2IM, MMV_IM2IM_NO_DEPS, cache_dir, run_tool, tool_python

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # first run builds the tool env (PyPI)

LOAD = """
import importlib.util, json, sys, types
from pathlib import Path
import numpy as np
root = Path(importlib.util.find_spec("mmv_im2im").submodule_search_locations[0])
package = types.ModuleType("mmv_im2im")
package.__path__ = [str(root)]
sys.modules["mmv_im2im"] = package  # its __init__ would import the trainer; the loaders need none of it
from mmv_im2im.utils.misc import generate_dataset_dict, generate_dataset_dict_monai
from mmv_im2im.utils.for_transform import parse_monai_ops
folder, out = Path(sys.argv[1]), Path(sys.argv[2])

def load(keys):
    return parse_monai_ops([{"module_name": "monai.transforms", "func_name": "LoadImaged",
                             "params": {"keys": keys, "dimension_order_out": "YX", "C": 0, "T": 0, "Z": 0}}])

report = {}
for mode, items, keys in (("folder", generate_dataset_dict_monai(folder), ["IM", "GT", "CM"]),
                          ("csv", generate_dataset_dict_monai(folder / "pairs.csv"), ["IM", "GT"])):
    report[mode] = []
    for item in items:
        name = Path(item["IM"]).name[: -len("_IM.tiff")]
        loaded = load(keys)(item)
        np.savez(out / f"{mode}_{name}.npz", **{k: np.asarray(loaded[k]) for k in keys})
        report[mode].append(name)
embedseg = generate_dataset_dict(folder / "pairs.csv")  # MMV_Im2Im's EmbedSeg loader
report["embedseg"] = [{k: str(v) for k, v in item.items()} for item in embedseg]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    from resources.demo import write_demo_dataset

    base = tmp_path_factory.mktemp("mmv")
    images, _ = write_demo_dataset(base / "data", n_images=3, size=64, seed=3)
    init_project(base / "proj", images, pseudo="otsu", task="instance")[0].close()
    return base / "proj"


def test_mmv_im2im_loads_the_pairs_folder_and_csv(project: Path, tmp_path: Path, request) -> None:
    with Project.open(project) as proj:
        export(proj, "pairs", tmp_path / "pairs", versions="all")
        chosen = {r.image.name: r for r in choose_labels(proj, "all", PAIR_PREFERENCE)}
        images = {im.name: io.read_image(im.path).data[0, 0] for im in proj.store.images()}
    python = tool_python(cache_dir(request.config), "mmv_im2im", MMV_IM2IM, MMV_IM2IM_NO_DEPS)
    (tmp_path / "out").mkdir()
    proc = run_tool(python, LOAD, str(tmp_path / "pairs"), str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(report["folder"]) == sorted(report["csv"]) == sorted(chosen)
    for mode in ("folder", "csv"):
        for name in chosen:
            got = np.load(tmp_path / "out" / f"{mode}_{name}.npz")
            np.testing.assert_array_equal(got["IM"], images[name])
            np.testing.assert_array_equal(got["GT"], chosen[name].label)
            if mode == "folder":  # MMV_Im2Im 0.8.1 takes cost maps from a folder only, not from a CSV
                np.testing.assert_array_equal(got["CM"], io.read_array(tmp_path / "pairs" / f"{name}_CM.tiff"))
    assert len(report["embedseg"]) == len(chosen)
    for item in report["embedseg"]:
        assert {"source_fn", "target_fn", "costmap_fn"} == set(item)
        assert all(Path(p).is_file() for p in item.values())
