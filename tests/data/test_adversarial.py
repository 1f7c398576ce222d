"""The adversarial-set format: every image codec is lossless, and Blosc sets open in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import h5py
import hdf5plugin
import numpy as np
import pytest

from advrecover.data import adversarial as adv_format


def sign_perturbed(n: int = 24) -> np.ndarray:
    """Images like FGSM's: grey levels plus or minus a step, clipped to [0, 1]."""
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (n, 8, 8, 3)) / 255.0
    return np.clip(clean + 0.008 * rng.choice([-1.0, 1.0], clean.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("codec", sorted(adv_format.CODECS))
def test_every_codec_stores_images_exactly(tmp_path, codec):
    x = sign_perturbed()
    with h5py.File(tmp_path / "a.h5", "w") as f:
        adv_format.create(f, len(x), 8, "float32", 8, codec)
        f["images"][...] = x
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert np.array_equal(f["images"][...], x) and f["images"].chunks == (8, 8, 8, 3)
        filters = f["images"].id.get_create_plist().get_nfilters()
    assert (filters > 0) == (codec != "none")


def test_blosc_sets_open_wherever_the_format_module_is_imported(tmp_path):
    x = sign_perturbed()
    with h5py.File(tmp_path / "a.h5", "w") as f:
        adv_format.create(f, len(x), 8, "float32", 8)  # the default codec
        f["images"][...] = x
        assert f["images"].id.get_create_plist().get_filter(0)[0] == hdf5plugin.BLOSC_ID
    read = ("import sys, h5py, numpy; import advrecover.data.adversarial; "
            "print(float(h5py.File(sys.argv[1], 'r')['images'][...].sum()))")
    out = subprocess.run([sys.executable, "-c", read, str(tmp_path / "a.h5")], capture_output=True, text=True,
                         check=True).stdout
    assert float(out) == pytest.approx(float(x.sum()), rel=1e-6)
