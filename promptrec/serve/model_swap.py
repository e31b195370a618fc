"""Newer models without a restart: reload the newest model version (on request, or when a watcher sees one),
roll back to the previous one, and refit on a schedule in a separate process, never in the request path."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from typing import Any, Sequence

from promptrec.serve.versions import ModelVersions

log = logging.getLogger(__name__)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class NothingToSwap(ValueError):
    """There is no other version to move to (HTTP 409)."""


def parse_duration(text: str) -> float:
    """'90s', '30m', '6h', '1d' (or plain seconds) -> seconds."""
    text = text.strip().lower()
    try:
        return float(text[:-1]) * UNITS[text[-1]] if text and text[-1] in UNITS else float(text)
    except ValueError:
        raise ValueError(f"duration {text!r}: give a number with s, m, h or d, e.g. 30m or 6h") from None


class ModelSwitcher:
    """Moves a :class:`RecommendationService` between the versions of one model folder, one swap at a time."""

    def __init__(self, service: Any, versions: ModelVersions, *, watch_s: float | None = None,
                 retrain_every_s: float | None = None, retrain_command: Sequence[str] | None = None):
        self.service, self.versions = service, versions
        self.watch_s, self.retrain_every_s = watch_s, retrain_every_s
        self.retrain_command = list(retrain_command or [])
        if retrain_every_s and not self.retrain_command:
            raise ValueError("--retrain-every needs the data to refit on (--data)")
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_retrain: dict[str, Any] | None = None
        self._failed: set[str] = set()  # versions the watcher could not serve: not tried again

    @property
    def current(self) -> str | None:
        return None if self.service.model is None else self.service.model.version

    def reload(self, version: str | None = None) -> dict[str, Any]:
        """Serve ``version`` (default: the newest usable one); nothing happens if it is already served."""
        with self._swap_lock:
            target = version or self.versions.newest()
            if target is None or target not in self.versions.all():
                raise NothingToSwap(f"no model version {target!r} in {self.versions.root}")
            if target == self.current:
                return {"version": target, "previous": target, "unchanged": True}
            return self._swap(target)

    def rollback(self) -> dict[str, Any]:
        """Serve the usable version before the current one and mark the current one rolled back (so a watcher
        does not bring it back)."""
        with self._swap_lock:
            current = self.current
            target = self.versions.before(current) if current else None
            if target is None:
                raise NothingToSwap(f"no usable version before {current!r} in {self.versions.root}")
            result = self._swap(target)
            self.versions.mark_rolled_back(current, "rolled back by /admin/rollback")
            return result | {"rolled_back": current}

    def _swap(self, version: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        retriever, manifest = self.versions.load(version), self.versions.manifest(version)
        load_ms = 1e3 * (time.perf_counter() - t0)
        result = self.service.swap(retriever, manifest) | {"load_ms": round(load_ms, 1)}
        log.info("now serving model version %s (was %s): loaded in %.0f ms, %d live events applied, switched in "
                 "%.0f ms", version, result["previous"], load_ms, result["events_applied"], result["swap_ms"])
        return result

    # -- background work ------------------------------------------------------------------
    def start(self) -> "ModelSwitcher":
        if self.watch_s:
            self._spawn(self._watch, "model-watch")
        if self.retrain_every_s:
            self._spawn(self._retrain_loop, "model-retrain")
        return self

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_s):
            newest = self.versions.newest()
            if newest is None or newest in self._failed or newest == self.current or (
                    self.current is not None and newest < self.current):
                continue
            try:
                self.reload(newest)
            except Exception:  # noqa: BLE001 - a broken version must not stop the watcher or the server
                self._failed.add(newest)
                log.exception("could not swap to model version %s; still serving %s (not tried again)", newest,
                              self.current)

    def _retrain_loop(self) -> None:
        while not self._stop.wait(self.retrain_every_s):
            self.retrain()

    def retrain(self) -> dict[str, Any]:
        """Run the refit command in a child process; on success serve the new version."""
        t0 = time.perf_counter()
        run = subprocess.run(self.retrain_command, capture_output=True, text=True)
        self.last_retrain = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "exit_code": run.returncode,
                             "seconds": round(time.perf_counter() - t0, 1)}
        if run.returncode != 0:
            log.error("scheduled refit failed (exit %d): %s", run.returncode, run.stderr[-2000:])
            return self.last_retrain
        try:
            self.last_retrain["swap"] = self.reload()
        except Exception:  # noqa: BLE001
            log.exception("scheduled refit made no servable version")
        return self.last_retrain

    def status(self) -> dict[str, Any]:
        return {"folder_versions": len(self.versions.all()), "watch_s": self.watch_s,
                "retrain_every_s": self.retrain_every_s, "last_retrain": self.last_retrain}

    def close(self) -> None:
        self._stop.set()
