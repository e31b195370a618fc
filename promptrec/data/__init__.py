"""Catalogue, event log, loaders, validation, splits and the embedded demo data."""

from promptrec._lazy import lazy_exports

_EXPORTS = {
    "Item": "promptrec.data.records", "Event": "promptrec.data.records",
    "Catalog": "promptrec.data.catalog", "Interactions": "promptrec.data.interactions",
    "Dataset": "promptrec.data.dataset", "DataError": "promptrec.data.problems", "LoadReport": "promptrec.data.problems",
    "load_dataset": "promptrec.data.loaders", "load_events": "promptrec.data.loaders",
    "load_items": "promptrec.data.loaders", "detect_format": "promptrec.data.loaders", "FORMATS": "promptrec.data.loaders",
    "generate_demo": "promptrec.data.demo", "Demo": "promptrec.data.demo", "DemoTruth": "promptrec.data.demo",
    "HeldOut": "promptrec.data.splits", "Split": "promptrec.data.splits", "make_split": "promptrec.data.splits",
    "leave_last_out": "promptrec.data.splits", "temporal_split": "promptrec.data.splits",
    "session_split": "promptrec.data.splits",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
