"""The web console under /ui: one user's recommendations as time, device and place change (``ui_router``)."""

from promptrec.serve.ui.routes import ui_router

__all__ = ["ui_router"]
