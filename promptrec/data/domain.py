"""The words prompts use for what users do with items: "watched" for films, "visited" for places.

The default prompts name no domain they were not told: a dataset without one says "interacted with". A loader
that knows its data sets the domain (MovieLens: movies; check-ins: places; the demo: a streaming service), and
``load_dataset(..., domain=...)``, an eval config's ``dataset: {domain: ...}`` or ``--domain`` sets any other, by
preset name or by its three phrases (``"bought/buy/purchase history"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Domain:
    """``did``: the past tense ("watched"); ``will``: the infinitive ("watch"); ``history``: the noun phrase for
    the user's past ("viewing history"). Templates say ``{{ domain.did }}``, ``{{ domain.will }}``,
    ``{{ domain.history }}``."""

    did: str = "interacted with"
    will: str = "interact with"
    history: str = "history"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def spelled(self) -> str:
        """The three phrases as one argument (``did/will/history``), as ``--domain`` takes them."""
        return f"{self.did}/{self.will}/{self.history}"

    @classmethod
    def of(cls, value: Any) -> "Domain":
        """A :class:`Domain` from None (generic), a preset name (:data:`DOMAINS`), a dict of its fields or itself."""
        if value is None:
            return cls()
        if isinstance(value, Domain):
            return value
        if isinstance(value, str):
            if value.count("/") == 2:  # "bought/buy/purchase history", as the command line gives it
                return cls.of(dict(zip(("did", "will", "history"), (part.strip() for part in value.split("/")))))
            if value not in DOMAINS:
                raise ValueError(f"unknown domain {value!r}; choose one of {sorted(DOMAINS)} or give its words, "
                                 "e.g. 'bought/buy/purchase history' or {did: bought, will: buy, history: "
                                 "purchase history}.")
            return DOMAINS[value]
        if isinstance(value, dict):
            unknown = set(value) - {"did", "will", "history"}
            if unknown:
                raise ValueError(f"domain has unknown fields {sorted(unknown)}; it takes did, will and history, "
                                 "e.g. {did: bought, will: buy, history: purchase history}.")
            bad = [k for k, v in value.items() if not isinstance(v, str) or not v.strip()]
            if bad:
                raise ValueError(f"domain fields {bad} must be non-empty text.")
            return cls(**value)
        raise ValueError(f"a domain is a preset name {sorted(DOMAINS)} or a mapping of did/will/history, "
                         f"not {type(value).__name__}.")


DOMAINS: dict[str, Domain] = {
    "generic": Domain(),
    "movies": Domain("watched", "watch", "viewing history"),
    "places": Domain("visited", "visit", "visit history"),
    "products": Domain("bought", "buy", "purchase history"),
    "games": Domain("played", "play", "play history"),
    "music": Domain("listened to", "listen to", "listening history"),
    "books": Domain("read", "read", "reading history"),
}
