"""Static plot files are Plotly's own rendering (Kaleido + the local Chromium), not a re-drawing.

A heatmap (the evidence map) is the case the former Matplotlib re-drawing lost: the file must hold
an image of the figure's size with the heatmap's colours in it.
"""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pandas as pd
import pytest

from metaanalysis.plots import StaticExportError, evidence_map_figure, save_figure

pytestmark = pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                                reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)")


def _evidence_map():
    m = pd.DataFrame({"compression_family": ["quantization", "quantization", "unstructured_pruning"],
                      "adversarial_training": ["no", "yes", "no"], "threat_model": ["white_box"] * 3,
                      "pooled": [-12.0, 3.0, -4.0], "results": [10, 4, 7], "studies": [3, 1, 2], "direction": ["down", "up", "down"]})
    return evidence_map_figure(m)


def test_png_is_the_figure_rendered_by_plotly_with_its_heatmap(tmp_path):
    fig = _evidence_map()
    out = save_figure(fig, tmp_path / "map.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (900, fig.layout.height)

    import matplotlib.image

    pixels = matplotlib.image.imread(out)[..., :3]
    r, b = pixels[..., 0], pixels[..., 2]
    reds = (r > b + 0.25).sum()  # RdBu centred on 0: the two negative cells are red
    blues = (b > r + 0.12).sum()  # the positive cell is blue (the plot's blue-grey background is not this blue)
    assert reds > 1000 and blues > 1000, (reds, blues)


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<svg"), (".pdf", b"%PDF")])
def test_svg_and_pdf_are_written(tmp_path, suffix, magic):
    out = save_figure(_evidence_map(), tmp_path / f"map{suffix}")
    assert magic in out.read_bytes()[:200]


def test_without_chromium_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(StaticExportError, match="needs Chromium .*apt-get install chromium"):
        save_figure(_evidence_map(), tmp_path / "map.png")
    assert not (tmp_path / "map.png").exists()


def test_html_needs_no_browser_and_other_suffixes_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    assert "plotly" in save_figure(_evidence_map(), tmp_path / "map.html").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf or \.html"):
        save_figure(_evidence_map(), tmp_path / "map.jpg")


def test_the_rendered_values_are_the_figures_values():
    z = np.array(_evidence_map().data[0].z, dtype=float)
    assert np.nanmin(z) == -12.0 and np.nanmax(z) == 3.0
