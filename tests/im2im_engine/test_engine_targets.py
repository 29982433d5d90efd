import numpy as np

from im2im_engine.targets import (
    BOUNDARY,
    INTERIOR,
    classes_to_instances,
    instances_to_classes,
    relabel_sequential,
)


def two_touching_disks(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    inst = np.zeros((size, size), np.int32)
    inst[(yy - 32) ** 2 + (xx - 22) ** 2 <= 100] = 1
    inst[((yy - 32) ** 2 + (xx - 41) ** 2 <= 100) & (inst == 0)] = 2  # overlaps disk 1: they touch
    return inst


def onehot(classes: np.ndarray) -> np.ndarray:
    return np.moveaxis(np.eye(3, dtype=np.float32)[classes], -1, 0)


def test_three_classes_separate_touching_objects():
    inst = two_touching_disks()
    cls = instances_to_classes(inst)
    assert set(np.unique(cls)) == {0, INTERIOR, BOUNDARY}
    # Along the contact line both sides are boundary: interiors do not touch.
    from skimage.measure import label

    assert label(cls == INTERIOR, connectivity=1).max() == 2


def test_watershed_splits_two_touching_disks():
    inst = two_touching_disks()
    probs = onehot(instances_to_classes(inst))
    out = classes_to_instances(probs, min_size=8)
    assert out.dtype == np.int32
    assert out.max() == 2
    # Each predicted object covers one true disk almost exactly.
    for k in (1, 2):
        overlap = np.bincount(out[inst == k], minlength=3)[1:]
        assert overlap.max() / (inst == k).sum() > 0.9


def test_3d_round_trip_and_small_objects_removed():
    inst = np.zeros((8, 32, 32), np.int32)
    inst[2:6, 4:14, 4:14] = 1
    inst[2:6, 18:28, 18:28] = 5
    inst[0, 0, 0] = 9  # a one-pixel speck
    probs = np.moveaxis(np.eye(3, dtype=np.float32)[instances_to_classes(inst)], -1, 0)
    out = classes_to_instances(probs, min_size=8)
    assert out.max() == 2


def test_relabel_sequential():
    a = np.array([[0, 5, 5], [9, 0, 2]])
    assert relabel_sequential(a).tolist() == [[0, 2, 2], [3, 0, 1]]
