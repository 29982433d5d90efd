import numpy as np

from im2im_engine.targets import (
    BOUNDARY,
    INTERIOR,
    classes_to_instances,
    instances_to_classes,
    relabel_sequential,
    remove_small,
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


def test_relabel_sequential_large_ids_stay_int32():
    a = np.array([[0, 2**40, 2**40], [7, 0, 0]], np.int64)
    out = relabel_sequential(a)
    assert out.dtype == np.int32 and out.tolist() == [[0, 2, 2], [1, 0, 0]]


def test_remove_small_keeps_objects_of_exactly_min_size(recwarn):
    a = np.zeros((6, 6), np.int32)
    a[0, :4] = 3  # 4 pixels
    a[5, :3] = 8  # 3 pixels
    out = remove_small(a, 4)
    assert out.dtype == a.dtype and set(np.unique(out)) == {0, 3}
    single = remove_small(np.where(a == 3, 1, 0), 4)  # one object only: no warning about it
    assert single.sum() == 4 and not [w for w in recwarn if "label" in str(w.message)]
    assert remove_small(a, 1) is a


def test_touching_objects_split_even_when_their_interiors_join():
    """A model trained from pseudo labels rarely learns the split line between touching nuclei: its interior
    probability covers both. The seeds (maxima of distance x P(interior)) still find two objects."""
    from im2im_engine.targets import classes_to_instances

    yy, xx = np.mgrid[:60, :80]
    a = (yy - 30) ** 2 + (xx - 25) ** 2 <= 12**2
    b = (yy - 30) ** 2 + (xx - 48) ** 2 <= 12**2
    fg = a | b
    probs = np.zeros((3, 60, 80), np.float32)
    probs[1] = np.where(fg, 0.9, 0.0)  # one joined interior, no boundary learnt
    probs[0] = 1 - probs[1]
    inst = classes_to_instances(probs)
    assert inst.max() == 2
    assert len(np.unique(inst[a & ~b])) == 1 and len(np.unique(inst[b & ~a])) == 1
    assert inst[30, 25] != inst[30, 48]
    # thin specks of foreground without interior are noise, not objects
    probs[2, 5, 70:74] = 0.9
    probs[0, 5, 70:74] = 0.1
    assert classes_to_instances(probs).max() == 2
