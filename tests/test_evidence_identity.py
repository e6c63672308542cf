"""Identity comparison by one canonical form (issue 23 item 4): look-alikes of a name are that name.

Every case is a spelling that passed the old lower-cased comparison as a different person.
"""

from __future__ import annotations

import unicodedata

import pytest

from evidence import EvidenceError, approve, canonical_identity, check_identity, import_results, reject, same_identity
from evidence.errors import NotAuthorized, ValidationFailed
from tests.helpers import result_row, write_rows

LOOK_ALIKES = {
    "zero-width space": "ali\u200bce",
    "Cyrillic а": "\u0430lice",
    "fullwidth letters": "\uff41\uff4c\uff49\uff43\uff45",
    "soft hyphen": "ali\u00adce",
    "dotted capital İ": "al\u0130ce",
    "upper case and padding": "  ALICE ",
    "word joiner and variation selector": "al\u2060ic\ufe0fe",
    "Greek ο in bob": "b\u03bfb",
}


@pytest.mark.parametrize("label", sorted(LOOK_ALIKES))
def test_a_look_alike_has_the_canonical_form_of_the_plain_name(label):
    name = LOOK_ALIKES[label]
    plain = "bob" if "bob" in label else "alice"
    assert canonical_identity(name) == canonical_identity(plain)
    assert same_identity(name, plain)


def test_different_names_stay_different_and_nfd_equals_nfc():
    assert not same_identity("alice", "alicia")
    assert not same_identity("alice", "alícé")  # an accent is a different letter, not a look-alike
    assert same_identity(unicodedata.normalize("NFD", "José"), "José")
    assert not same_identity("", "")  # no one is no one's equal
    assert not same_identity("\u200b", "\u200c")


@pytest.mark.parametrize("invisible", ["\u200b", "\u00ad\u2060", "\ufeff", " \u200d "])
def test_an_invisible_name_is_refused(invisible):
    with pytest.raises(EvidenceError, match="invisible"):
        check_identity(invisible)


def test_check_identity_keeps_a_readable_name_and_refuses_a_long_one():
    assert check_identity("  carol ") == "carol"
    with pytest.raises(EvidenceError, match="1 to 120"):
        check_identity("c" * 121)


@pytest.mark.parametrize("label", sorted(k for k in LOOK_ALIKES if "bob" not in k))
def test_alice_cannot_approve_her_own_submission_under_a_look_alike(seeded, tmp_path, monkeypatch, label):
    monkeypatch.delenv("CREV_ALLOW_SELF_APPROVAL", raising=False)
    rep = import_results(seeded, write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="31.5")]), by="alice")
    with pytest.raises(NotAuthorized, match="cannot approve"):
        approve(seeded, rep.submission_id, by=LOOK_ALIKES[label])
    assert approve(seeded, rep.submission_id, by="carol").status.value == "approved"


def test_invisible_reviewer_and_submitter_are_refused_and_nothing_changes(seeded, tmp_path):
    rep = import_results(seeded, write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="32.5")]), by="alice")
    with pytest.raises(EvidenceError, match="invisible"):
        approve(seeded, rep.submission_id, by="\u200b")
    with pytest.raises(EvidenceError, match="invisible"):
        reject(seeded, rep.submission_id, reason="no", by="\u2060")
    with pytest.raises(ValidationFailed, match="invisible"):
        import_results(seeded, write_rows(tmp_path / "b.csv", [result_row(robust_acc_compressed="33.5")]), by="\u200b\u00ad")
    assert reject(seeded, rep.submission_id, reason="withdrawn", by="alice").status.value == "rejected"
