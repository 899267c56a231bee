"""Hotspots: keywords of ticket text per branch and ticket kind, ranked by frequency × weight, with their trend.

Chinese is segmented by jieba with a utility-domain dictionary; English is tokenised and stemmed (snowball);
synonyms put both languages under one keyword, so they share one ranking. Keywords are extracted once per
ticket into `ticket_keyword`; a ranking is then one SQL aggregation.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import jieba
import snowballstemmer
from sqlalchemy import case, func, insert
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.errors import DomainError
from dispatch.models import Ticket
from geo.areas import RegionConfig
from quality.common import check_unit, days_window
from quality.models import TicketKeyword
from quality.rules import DATA, QualitySettings

MAX_LIMIT = 200
CACHE_SIZE = 50_000
jieba.setLogLevel(logging.WARNING)
_RUNS = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff]+)|([A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*)")


def _read_words(path: Path) -> frozenset[str]:
    return frozenset(w for line in path.read_text(encoding="utf-8").splitlines() for w in line.split()
                     if not line.startswith("#"))


class Tokeniser:
    """Turns ticket text into keywords: {keyword: (label, weight)}, once per keyword."""

    def __init__(self, data_dir: Path = DATA) -> None:
        self._jieba = jieba.Tokenizer()
        self._jieba.load_userdict(str(data_dir / "utility_dict.txt"))
        self._lock = threading.Lock()  # jieba initialises lazily; do that once
        self.stop_zh = _read_words(data_dir / "stopwords_zh.txt")
        self.stop_en = _read_words(data_dir / "stopwords_en.txt")
        terms = json.loads((data_dir / "hotspot_terms.json").read_text(encoding="utf-8"))
        self.weights: dict[str, float] = {k: float(v) for k, v in terms["weights"].items()}
        self.synonyms: dict[str, str] = dict(terms["synonyms"])
        self._stemmer = snowballstemmer.stemmer("english")
        self._cache: dict[str, dict[str, tuple[str, float]]] = {}

    def _chinese(self, run: str) -> list[str]:
        with self._lock:
            words = self._jieba.lcut(run)
        return [self.synonyms.get(w, w) for w in words if len(w) >= 2 and w not in self.stop_zh]

    def _english(self, words: list[str]) -> list[tuple[str, str]]:
        """(keyword, label) of English words: two-word phrases of the vocabulary first, then single stems."""
        lower = [w.lower().replace("’", "'") for w in words]
        stems = self._stemmer.stemWords(lower)
        out: list[tuple[str, str]] = []
        i = 0
        while i < len(lower):
            if i + 1 < len(lower) and (pair := f"{stems[i]} {stems[i + 1]}") in self.synonyms:
                out.append((self.synonyms[pair], self.synonyms[pair]))
                i += 2
                continue
            word, stem = lower[i], stems[i]
            i += 1
            has_digit = any(c.isdigit() for c in word)
            if word in self.stop_en or len(word) < 2 or (has_digit and word not in self.weights):
                continue
            if stem in self.synonyms:
                out.append((self.synonyms[stem], self.synonyms[stem]))
            else:
                out.append((stem, word))
        return out

    def keywords(self, text: str) -> dict[str, tuple[str, float]]:
        """Memoised: reports repeat the same few sentences ("家里停电了") over and over."""
        cached = self._cache.get(text)
        if cached is None:
            cached = self._keywords(text)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = cached
        return dict(cached)

    def _keywords(self, text: str) -> dict[str, tuple[str, float]]:
        found: dict[str, tuple[str, float]] = {}
        english: list[str] = []

        def flush_english() -> None:
            for keyword, label in self._english(english):
                found.setdefault(keyword[:64], (label[:64], self.weights.get(keyword, 1.0)))
            english.clear()

        for match in _RUNS.finditer(text or ""):
            if match.group(1):
                flush_english()
                for word in self._chinese(match.group(1)):
                    found.setdefault(word[:64], (word[:64], self.weights.get(word, 1.0)))
            else:
                english.append(match.group(2))
        flush_english()
        return found


@lru_cache(maxsize=1)
def default_tokeniser() -> Tokeniser:
    return Tokeniser()


def index_keywords(session: Session, tokeniser: Tokeniser | None = None, batch: int = 5000,
                   limit: int | None = None, since: datetime | None = None) -> int:
    """Extract the keywords of every ticket (reported since `since`) not yet indexed; rows are flushed, not
    committed. Returns how many tickets were indexed."""
    tokeniser = tokeniser or default_tokeniser()
    done = 0
    while limit is None or done < limit:
        indexed = select(TicketKeyword.ticket_id).where(col(TicketKeyword.ticket_id) == col(Ticket.id)).exists()
        query = select(Ticket.id, Ticket.created_at, Ticket.branch, Ticket.kind, Ticket.summary,
                       Ticket.description).where(~indexed)
        if since is not None:
            query = query.where(col(Ticket.created_at) >= since)
        rows = session.exec(query.order_by(col(Ticket.id)).limit(batch)).all()
        if not rows:
            break
        values: list[dict[str, object]] = []
        for ticket_id, created_at, branch, kind, summary, description in rows:
            words = tokeniser.keywords(f"{summary or ''} {description or ''}")
            base = {"ticket_id": ticket_id, "created_at": created_at, "branch": branch, "kind": kind}
            values.extend({**base, "keyword": k, "label": label, "weight": weight}
                          for k, (label, weight) in words.items())
            if not words:  # remembered as indexed, with no keyword
                values.append({**base, "keyword": None, "label": None, "weight": 0.0})
        session.execute(insert(TicketKeyword), values)
        session.flush()
        done += len(rows)
    return done


@dataclass(frozen=True)
class Hotspot:
    keyword: str
    label: str
    category: str
    branch: str
    ticket_count: int
    weight: float
    score: float
    previous_count: int
    trend: str  # NEW, RISING, STEADY, FALLING


def trend_of(current: int, previous: int) -> str:
    if previous == 0:
        return "NEW"
    return "RISING" if current > previous else "FALLING" if current < previous else "STEADY"


def hotspots(session: Session, region: RegionConfig, settings: QualitySettings, days: int | None = None,
             branch: str | None = None, kinds: list[str] | None = None, limit: int = 20,
             now: datetime | None = None) -> list[Hotspot]:
    """The top keywords of the last `days` days (default 30) per branch and kind, one ranking by
    ticket count × weight, each with its count in the window before (its trend). Index first (`index_keywords`)."""
    check_unit(branch, region, settings)
    if not 1 <= limit <= MAX_LIMIT:
        raise DomainError.one("limit", f"limit must be between 1 and {MAX_LIMIT}")
    window = days_window(days, now or utcnow())
    previous = window.previous()
    unit = func.coalesce(col(TicketKeyword.branch), settings.default_unit.code)
    current = func.sum(case((col(TicketKeyword.created_at) >= window.start, 1), else_=0))
    before = func.sum(case((col(TicketKeyword.created_at) < window.start, 1), else_=0))
    weight = func.max(col(TicketKeyword.weight))
    query = (
        select(unit, col(TicketKeyword.kind), col(TicketKeyword.keyword), func.min(col(TicketKeyword.label)),
               weight, current, before)
        .where(col(TicketKeyword.created_at) >= previous.start, col(TicketKeyword.created_at) < window.end,
               col(TicketKeyword.keyword).is_not(None))
        .group_by(unit, col(TicketKeyword.kind), col(TicketKeyword.keyword))
        .having(current > 0)
        .order_by((current * weight).desc(), current.desc(), col(TicketKeyword.keyword), unit,
                  col(TicketKeyword.kind))
        .limit(limit)
    )
    if branch is not None:
        query = query.where(unit == branch)
    if kinds:
        query = query.where(col(TicketKeyword.kind).in_(kinds))
    return [Hotspot(keyword=k, label=label or k, category=kind, branch=b, ticket_count=int(cur),
                    weight=float(w), score=float(cur) * float(w), previous_count=int(prev or 0),
                    trend=trend_of(int(cur), int(prev or 0)))
            for b, kind, k, label, w, cur, prev in session.exec(query)]
