"""Reports: one self-contained HTML page to look at runs (`selfalign report RUN [RUN ...]`).

    runs.py     reads a run folder: a generator run (run.sqlite), an evaluation (results.json)
                or a training run (trainer_state.json); its overview and its view's data
    views/      one module per kind of run, with its script in assets/views/KIND.js
    page.py     the page: the data as JSON, the scripts and styles inline, a CSP that lets
                nothing leave the page

Model text is untrusted: it reaches the page only inside the JSON block (with "<" escaped) and
the page's script puts it on screen as text, never as markup.
"""

from .page import COMPRESS_ABOVE, render_page
from .runs import read_run, read_runs, run_notes


def build_report(folders: list[str], *, full: bool = False, compress_above: int = COMPRESS_ABOVE) -> str:
    """The HTML of one page showing every run in `folders`, side by side (a `self-align` folder
    gives one run per stage that ran, and a note naming those that did not)."""
    runs = [run for folder in folders for run in read_runs(folder, full=full)]
    return render_page(runs, compress_above, notes=[note for folder in folders for note in run_notes(folder)])


__all__ = ["build_report", "read_run", "read_runs", "render_page", "run_notes"]
