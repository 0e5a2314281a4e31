"""One module per kind of run the report shows; each has a script, assets/views/NAME.js, that
draws it on the page (it sets `VIEWS[kind]`).

A generator method's module (listed in VIEWS under the method's name) has
    record(record, full) -> dict   what of one record the page embeds (full: everything)
    extra(store) -> dict           what else of the run the view needs, read from the store
    DEFERRED (optional)            record keys only an item's detail shows: a large page holds
                                   them apart and inflates them when the item is opened
Evaluations and training runs are folders of their own kind; their modules have load(folder).

Adding a view: a module here, its script, and a line in VIEWS. A run of a method without a view
still gets its overview and a list of its items.
"""

from . import attack, critique, evaluation, matrix, principles, probe, sandbox, self_instruct, training, verbose

VIEWS = {
    "matrix": matrix, "sandbox": sandbox, "critique-revise": critique,
    "self-instruct": self_instruct, "principles": principles, "verbose": verbose, "attack": attack,
    "probe": probe,
}

__all__ = ["VIEWS", "attack", "critique", "evaluation", "matrix", "principles", "probe", "sandbox", "self_instruct", "training", "verbose"]
