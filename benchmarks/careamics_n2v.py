"""CAREamics' N2V on one noisy image, for ``benchmarks/denoise.py`` (runs in CAREamics' own venv).

``python benchmarks/careamics_n2v.py NOISY.npy OUT.npy STEPS BATCH PATCH [--n2v2] [--threads N] [--seed S]
[--masked-percent P]``: trains CAREamics' N2V (its defaults: UNet depth 2, 32 initial channels, batch norm,
Adam, 0.2 % masked pixels unless ``--masked-percent``, window 11, mean/std normalisation) for exactly STEPS
optimiser steps of BATCH patches of PATCH², predicts the whole image with tiles (CAREamics 0.3 has no
test-time augmentation), writes the prediction (raw units) and prints one JSON line with the seconds.

Kept free of our packages on purpose: CAREamics pins its own torch, so it lives in its own venv and this
file is all that crosses over. Validation is one held-out patch per epoch (its learning-rate schedule
watches the validation loss).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    import numpy as np
    import torch
    from careamics import CAREamist
    from careamics.config import create_advanced_n2v_config

    noisy_path, out_path, steps, batch, patch = argv[:5]
    n2v2 = "--n2v2" in argv
    threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 0
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 1
    masked = float(argv[argv.index("--masked-percent") + 1]) if "--masked-percent" in argv else 0.2
    if threads:
        torch.set_num_threads(threads)
    steps, batch, patch = int(steps), int(batch), int(patch)
    noisy = np.load(noisy_path).astype(np.float32)
    axes = "YX" if noisy.ndim == 2 else "ZYX"
    psize = [patch, patch] if noisy.ndim == 2 else [min(patch, 16), patch, patch]
    cfg = create_advanced_n2v_config(
        experiment_name="bench", data_type="array", axes=axes, patch_size=psize, batch_size=batch,
        num_epochs=10_000, use_n2v2=n2v2, masked_pixel_percentage=masked, num_workers=0, seed=seed, n_val_patches=1,
        trainer_params={"max_steps": steps, "enable_model_summary": False, "limit_val_batches": 1,
                        "accelerator": "cpu"},
        checkpoint_params={"save_top_k": 0, "save_last": False},
    )
    with tempfile.TemporaryDirectory() as work:
        model = CAREamist(cfg, work_dir=work, enable_progress_bar=False)
        t0 = time.perf_counter()
        c0 = time.process_time()
        model.train(train_data=noisy)
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        tile = [min(256, s - s % 16) for s in noisy.shape]
        preds, _ = model.predict(noisy, axes=axes, tile_size=tile, tile_overlap=[min(48, t // 2) for t in tile])
        predict_s = time.perf_counter() - t0
    pred = np.asarray(preds[0]).squeeze().astype(np.float32)
    np.save(out_path, pred)
    print(json.dumps({"train_s": train_s, "train_cpu_s": train_cpu, "predict_s": predict_s,
                      "steps": int(model.trainer.global_step), "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
