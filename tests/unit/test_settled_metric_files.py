"""A scrape of a prefork worker's metrics skips the file a just-forked child is creating:
prometheus_client's multiprocess collector fails the whole scrape (a 500) on an empty one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.contrib.prometheus import SettledFiles


class _Collector:
    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self.merged: list[str] = []

    def merge(self, files: list[str], accumulate: bool = True) -> list[Any]:
        self.merged = sorted(Path(f).name for f in files)
        return []


def test_a_file_still_being_created_is_left_out_of_the_scrape(tmp_path: Path) -> None:
    (tmp_path / "counter_100.db").write_bytes(b"\x08\x00\x00\x00" + b"\x00" * 12)
    (tmp_path / "histogram_100.db").write_bytes(b"\x08\x00\x00\x00" + b"\x00" * 12)
    (tmp_path / "counter_101.db").write_bytes(b"")  # its child forked a moment ago
    (tmp_path / "notes.txt").write_bytes(b"not a metrics file")
    collector = _Collector(tmp_path)
    SettledFiles(collector).collect()
    assert collector.merged == ["counter_100.db", "histogram_100.db"]
