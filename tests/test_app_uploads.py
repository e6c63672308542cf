"""Uploads on the Add evidence page are streamed to a temporary file in chunks under the cap of
``server.maxUploadSize`` (ui/uploads.py), refused past it with a message and nothing written, and
the temporary file is gone once the preview or the import has read it."""

import hashlib
import io
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from evidence import get_engine, pending_submissions
from tests.helpers import result_row, write_rows
from ui import uploads
from ui.uploads import CHUNK_BYTES, MIB, UploadTooLarge, spool

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
CONFIG_MB = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]


class _Reads(io.BytesIO):
    """A BytesIO that records the size of every read."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, n=-1):
        self.reads.append(n)
        return super().read(n)


def test_spool_streams_in_chunks_to_a_temp_file_and_deletes_it_after(tmp_path):
    data = bytes(range(256)) * 1000  # 256,000 bytes: four chunks
    src = _Reads(data)
    src.read(10)  # a reader that already moved: spool starts from the beginning anyway
    src.reads.clear()
    with spool(src, len(data), name="r.csv", directory=tmp_path) as f:
        assert f.path.parent == tmp_path and f.path.suffix == ".csv" and f.path.read_bytes() == data
        assert (f.size, f.sha256, f.name) == (len(data), hashlib.sha256(data).hexdigest(), "r.csv")
    assert not list(tmp_path.iterdir())
    assert src.reads and all(0 < n <= CHUNK_BYTES for n in src.reads)  # never one read of the whole
    with pytest.raises(RuntimeError), spool(io.BytesIO(b"a,b\n1,2\n"), 100, name="r.csv", directory=tmp_path):
        raise RuntimeError("the importer failed")
    assert not list(tmp_path.iterdir())  # deleted on an error inside the block too


def test_spool_refuses_at_the_first_chunk_past_the_cap_and_leaves_nothing(tmp_path):
    limit = 3 * CHUNK_BYTES
    src = _Reads(b"x" * (10 * CHUNK_BYTES))
    with pytest.raises(UploadTooLarge) as err, spool(src, limit, name="big.csv", directory=tmp_path):
        pytest.fail("an upload past the cap must not be handed on")
    assert src.tell() == limit + CHUNK_BYTES  # stopped at the chunk that passed the cap, not at the end
    assert not list(tmp_path.iterdir())
    assert str(err.value) == ("big.csv is more than 0.1875 MB, above the 0.1875 MB limit for uploads here; nothing was written. "
                              "Import a larger file from the command line: `crev evidence import big.csv`.")
    with spool(io.BytesIO(b"y" * limit), limit, name="edge.csv", directory=tmp_path) as f:  # exactly the cap is allowed
        assert f.size == limit


def test_spool_refuses_a_known_size_above_the_cap_before_creating_a_file(tmp_path, monkeypatch):
    src = io.BytesIO(b"z" * (5 * MIB + 1))
    src.size = 5 * MIB + 1  # as Streamlit's UploadedFile carries it

    def no_file(*a, **k):
        raise AssertionError("a temporary file was created for a refused upload")

    monkeypatch.setattr(uploads.tempfile, "mkstemp", no_file)
    with pytest.raises(UploadTooLarge, match=r"big\.csv is 5,242,881 bytes, above the 5 MB limit"), \
            spool(src, 5 * MIB, name="big.csv", directory=tmp_path):
        pass
    assert src.tell() == 0 and not list(tmp_path.iterdir())


@pytest.fixture
def add_page(seeded_url, monkeypatch, tmp_path):
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CREV_CURATOR_SECRET", raising=False)
    monkeypatch.setenv("CREV_APP_PRECOMPUTE", "0")
    monkeypatch.setattr("ui.state.PRECOMPUTE", False, raising=False)
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_dir))  # where mkstemp puts the uploads
    t = AppTest.from_file(APP, default_timeout=120)
    t.run()
    t.switch_page("ui/add.py")
    t.run()
    assert not t.exception, t.exception
    return t, get_engine(seeded_url), spool_dir


def _text(t) -> str:
    return " ".join(str(x.value) for x in (*t.markdown, *t.caption, *t.info, *t.error, *t.success, *t.warning))


def test_the_cap_is_the_servers_max_upload_size_and_the_page_says_it(add_page):
    t, _, _ = add_page
    assert CONFIG_MB == 5
    assert f"up to {CONFIG_MB} MB" in t.file_uploader(key="upload").label


def test_an_upload_previews_then_submits_read_from_disk_in_chunks(add_page, tmp_path, monkeypatch):
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    reads: list[int] = []
    real_read = UploadedFile.read

    def read(self, n=-1):
        reads.append(n)
        return real_read(self, n)

    whole: list[str] = []
    real_getvalue = UploadedFile.getvalue

    def getvalue(self):  # AppTest itself calls it to carry the file across reruns; the app must not
        caller = sys._getframe(1).f_code.co_filename
        if not caller.startswith(str(ROOT / ".venv")) and "site-packages" not in caller:
            whole.append(caller)
        return real_getvalue(self)

    monkeypatch.setattr(UploadedFile, "read", read)
    monkeypatch.setattr(UploadedFile, "getvalue", getvalue)
    t, engine, spool_dir = add_page
    csv = write_rows(tmp_path / "two.csv", [result_row(), result_row(compression_level="0.90", robust_acc_compressed="45.0")])
    t.file_uploader(key="upload").set_value(("two.csv", csv.read_bytes(), "text/csv")).run()
    assert not t.exception, t.exception
    assert "Preview of two.csv" in _text(t) and not t.error
    assert {m.label: m.value for m in t.metric}["Rows read"] == "2"
    assert pending_submissions(engine).empty and not list(spool_dir.iterdir())  # the preview wrote nothing and left nothing
    assert reads and all(0 < n <= CHUNK_BYTES for n in reads) and not whole, whole  # streamed, never copied whole
    t.text_input(key="user_name").input("Jane Doe")
    t.button(key="FormSubmitter:declare_name-Use this name").click().run()
    t.button(key="import_btn").click().run()
    assert not t.exception, t.exception
    assert "results are in the review queue" in _text(t), _text(t)
    pend = pending_submissions(engine)
    assert len(pend) == 1 and pend["kind"].iloc[0] == "import_results" and pend["submitted_by"].iloc[0] == "Jane Doe"
    assert pend["source_file"].iloc[0] == "two.csv"  # the user's file name, not the temporary path
    assert not list(spool_dir.iterdir()) and not whole


def test_an_upload_above_the_cap_is_refused_with_a_message_and_writes_nothing(add_page, tmp_path):
    t, engine, spool_dir = add_page
    row = write_rows(tmp_path / "one.csv", [result_row()]).read_bytes()
    header, line = row.split(b"\n", 1)
    big = header + b"\n" + line * (CONFIG_MB * MIB // len(line) + 1)  # a valid CSV just over the cap
    assert CONFIG_MB * MIB < len(big) < (CONFIG_MB + 1) * MIB
    t.file_uploader(key="upload").set_value(("big.csv", big, "text/csv")).run()
    assert not t.exception, t.exception
    errors = [e.value for e in t.error]
    assert errors == [f"big.csv is {len(big):,} bytes, above the {CONFIG_MB} MB limit for uploads here; nothing was written. "
                      "Import a larger file from the command line: `crev evidence import big.csv`."]
    assert "Preview of" not in _text(t) and not [b for b in t.button if b.key == "import_btn"]
    assert pending_submissions(engine).empty and not list(spool_dir.iterdir())
