"""Real loss curves from the user's seed documents, kept here as data with their source (file and lines).

Seed 003 (``/work/shared/seeds/003_7affd2229c5bafc6.txt``, a ChromaDB small-language-model study) gives
each phase twice: a "Loss Progression Table" rounded to two decimals and the "Training Progress" log
with four.  Seed 000 (``/work/shared/seeds/000_2251ef988556a62e.txt``) gives per-epoch tables of two
runs, v1 and v3.  Losses are nats per token, as printed there.

``overfits`` is how a careful reader judges each run (issue 13):

- seed 003 phase 0: val is best at step 100 (6.15) and climbs to 7.7 while train falls to 0.2;
- phase 1: val stops improving after about step 200 (6.59; the 6.06 at step 400 is one eval between
  6.83 and 6.65) while train falls from 4.98 to 2.55 and the gap more than doubles;
- phase 4: val is best at step 2000 (4.04) and never gets back there while train falls from 1.62 to 1.06;
  its 1,000-1,400 plateau is not the onset, because val improves again after it;
- phase 2: val improves at every eval; phase 3: its last eval is its lowest (2.1311 at step 2000; the
  table's 2.13), so val had not stopped improving;
- seed 000 v1 and v3: val improves at every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SEED003 = "/work/shared/seeds/003_7affd2229c5bafc6.txt"
SEED000 = "/work/shared/seeds/000_2251ef988556a62e.txt"


@dataclass(frozen=True)
class SeedCurve:
    name: str
    source: str  # "file, lines a-b"
    iters: tuple
    train: tuple
    val: tuple
    overfits: bool
    onset_iter: Optional[int] = None  # where a careful reader puts the onset, when the seed is that clear


def _c(name, source, rows, overfits, onset_iter=None) -> SeedCurve:
    it, tr, va = zip(*rows)
    return SeedCurve(name, source, it, tr, va, overfits, onset_iter)


SEED_CURVES: tuple[SeedCurve, ...] = (
    _c(
        "003 phase 0 table",
        f"{SEED003}, lines 101-111",
        [
            (0, 10.62, 10.61),
            (50, 3.07, 6.41),
            (100, 1.34, 6.15),
            (150, 0.71, 6.49),
            (200, 0.49, 6.66),
            (250, 0.24, 7.27),
            (300, 0.26, 7.08),
            (350, 0.20, 7.43),
            (400, 0.20, 7.71),
            (450, 0.16, 7.73),
            (500, 0.17, 7.07),
        ],
        True,
        100,
    ),
    _c(
        "003 phase 0 log",
        f"{SEED003}, lines 115-125",
        [
            (0, 10.6153, 10.6105),
            (50, 3.0677, 6.4103),
            (100, 1.3384, 6.1531),
            (150, 0.7079, 6.4852),
            (200, 0.4910, 6.6608),
            (250, 0.2405, 7.2732),
            (300, 0.2621, 7.0775),
            (350, 0.2034, 7.4320),
            (400, 0.2003, 7.7069),
            (450, 0.1573, 7.7286),
            (500, 0.1738, 7.0732),
        ],
        True,
        100,
    ),
    _c(
        "003 phase 1 table",
        f"{SEED003}, lines 401-411",
        [
            (0, 10.74, 10.78),
            (50, 9.58, 9.80),
            (100, 8.04, 8.80),
            (150, 6.31, 7.49),
            (200, 4.98, 6.59),
            (250, 4.20, 6.63),
            (300, 3.76, 6.69),
            (350, 3.62, 6.83),
            (400, 3.09, 6.06),
            (450, 3.02, 6.65),
            (500, 2.55, 6.31),
        ],
        True,
    ),
    _c(
        "003 phase 1 log",
        f"{SEED003}, lines 415-425",
        [
            (0, 10.7359, 10.7792),
            (50, 9.5831, 9.7979),
            (100, 8.0367, 8.7964),
            (150, 6.3070, 7.4874),
            (200, 4.9832, 6.5874),
            (250, 4.1966, 6.6320),
            (300, 3.7610, 6.6851),
            (350, 3.6235, 6.8276),
            (400, 3.0868, 6.0635),
            (450, 3.0151, 6.6473),
            (500, 2.5454, 6.3079),
        ],
        True,
    ),
    _c(
        "003 phase 2 table",
        f"{SEED003}, lines 598-608",
        [
            (0, 10.73, 10.63),
            (100, 7.90, 7.48),
            (200, 5.32, 4.69),
            (300, 3.96, 3.60),
            (400, 3.48, 2.91),
            (500, 2.87, 2.66),
            (600, 2.52, 2.38),
            (700, 2.28, 2.14),
            (800, 2.05, 1.94),
            (900, 1.84, 1.81),
            (1000, 1.74, 1.57),
        ],
        False,
    ),
    _c(
        "003 phase 2 log",
        f"{SEED003}, lines 612-622",
        [
            (0, 10.7308, 10.6310),
            (100, 7.8980, 7.4829),
            (200, 5.3243, 4.6906),
            (300, 3.9626, 3.5989),
            (400, 3.4821, 2.9077),
            (500, 2.8656, 2.6637),
            (600, 2.5203, 2.3754),
            (700, 2.2839, 2.1362),
            (800, 2.0520, 1.9398),
            (900, 1.8400, 1.8056),
            (1000, 1.7381, 1.5665),
        ],
        False,
    ),
    _c(
        "003 phase 3 table",
        f"{SEED003}, lines 949-963",
        [
            (0, 10.68, 10.72),
            (150, 6.62, 6.93),
            (300, 3.81, 4.43),
            (450, 3.07, 3.77),
            (600, 2.46, 3.33),
            (750, 2.24, 3.05),
            (900, 1.85, 2.85),
            (1050, 1.61, 2.68),
            (1200, 1.44, 2.41),
            (1350, 1.19, 2.40),
            (1500, 1.04, 2.31),
            (1650, 0.95, 2.19),
            (1800, 0.78, 2.14),
            (1950, 0.65, 2.17),
            (2000, 0.63, 2.13),
        ],
        False,
    ),
    _c(
        "003 phase 3 log",
        f"{SEED003}, lines 967-981",
        [
            (0, 10.6832, 10.7214),
            (150, 6.6175, 6.9292),
            (300, 3.8132, 4.4322),
            (450, 3.0707, 3.7740),
            (600, 2.4566, 3.3333),
            (750, 2.2359, 3.0498),
            (900, 1.8511, 2.8496),
            (1050, 1.6091, 2.6773),
            (1200, 1.4374, 2.4126),
            (1350, 1.1925, 2.4005),
            (1500, 1.0398, 2.3101),
            (1650, 0.9505, 2.1878),
            (1800, 0.7805, 2.1357),
            (1950, 0.6488, 2.1723),
            (2000, 0.6332, 2.1311),
        ],
        False,
    ),
    _c(
        "003 phase 4 table",
        f"{SEED003}, lines 1369-1384",
        [
            (0, 10.67, 10.69),
            (200, 7.79, 8.18),
            (400, 5.64, 6.26),
            (600, 3.90, 4.76),
            (800, 3.11, 4.45),
            (1000, 2.71, 4.23),
            (1200, 2.43, 4.23),
            (1400, 2.16, 4.22),
            (1600, 2.02, 4.18),
            (1800, 1.81, 4.09),
            (2000, 1.62, 4.04),
            (2200, 1.51, 4.12),
            (2400, 1.40, 4.16),
            (2600, 1.25, 4.27),
            (2800, 1.13, 4.13),
            (3000, 1.06, 4.20),
        ],
        True,
        2000,
    ),
    _c(
        "003 phase 4 log",
        f"{SEED003}, lines 1388-1403",
        [
            (0, 10.6686, 10.6907),
            (200, 7.7930, 8.1833),
            (400, 5.6416, 6.2631),
            (600, 3.9036, 4.7643),
            (800, 3.1131, 4.4471),
            (1000, 2.7142, 4.2282),
            (1200, 2.4250, 4.2308),
            (1400, 2.1634, 4.2157),
            (1600, 2.0173, 4.1781),
            (1800, 1.8147, 4.0875),
            (2000, 1.6190, 4.0449),
            (2200, 1.5052, 4.1244),
            (2400, 1.3963, 4.1639),
            (2600, 1.2548, 4.2735),
            (2800, 1.1340, 4.1335),
            (3000, 1.0617, 4.2001),
        ],
        True,
        2000,
    ),
    # seed 000: one row per epoch; the iter column is the epoch number
    _c("000 v1", f"{SEED000}, lines 116-118", [(1, 5.32, 3.23), (2, 2.94, 2.82), (3, 2.74, 2.74)], False),
    _c(
        "000 v3",
        f"{SEED000}, lines 76-85",
        [
            (1, 7.95, 6.39),
            (2, 5.83, 5.40),
            (3, 5.26, 5.04),
            (4, 4.98, 4.82),
            (5, 4.81, 4.69),
            (6, 4.70, 4.60),
            (7, 4.63, 4.55),
            (8, 4.59, 4.52),
            (9, 4.56, 4.50),
            (10, 4.55, 4.50),
        ],
        False,
    ),
)


def seed_curve(name: str) -> SeedCurve:
    return next(c for c in SEED_CURVES if c.name == name)
