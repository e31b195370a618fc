"""Figures written to files (promptrec.plots)."""

from promptrec.plots import pyplot, save_figure


def test_save_figure_writes_a_png_and_frees_the_figure(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "line.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()  # closed: a long study draws many figures
    assert plt.get_backend().lower() == "agg"
