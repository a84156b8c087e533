"""The artifact store writes once, verifies on load and never leaves its root."""

from __future__ import annotations

import re
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelql.models.artifacts import (
    ArtifactExistsError,
    ArtifactIntegrityError,
    ArtifactPathError,
    ArtifactStore,
    StoredArtifact,
    sha256_of,
)

FEATURES = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
TARGET = np.array([0, 1, 0, 1])


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def estimator() -> LogisticRegression:
    return LogisticRegression().fit(FEATURES, TARGET)


def files_under(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def test_save_names_the_file_by_model_version_and_digest(
    store: ArtifactStore, estimator: LogisticRegression
) -> None:
    stored = store.save(estimator, model_name="toy", version=3)

    assert re.fullmatch(r"toy/v3-[0-9a-f]{12}\.joblib", stored.path)
    assert stored.path == f"toy/v3-{stored.sha256[:12]}.joblib"
    assert stored.sha256 == sha256_of(store.root / stored.path)
    assert files_under(store.root) == [stored.path]


def test_load_returns_an_equivalent_estimator(
    store: ArtifactStore, estimator: LogisticRegression
) -> None:
    stored = store.save(estimator, model_name="toy", version=1)

    loaded = store.load(stored.path, stored.sha256)

    np.testing.assert_array_equal(loaded.predict_proba(FEATURES), estimator.predict_proba(FEATURES))


def test_saving_identical_bytes_again_reuses_the_file(
    store: ArtifactStore, estimator: LogisticRegression
) -> None:
    """Another database on the same artifact root registers the same artifact."""
    first = store.save(estimator, model_name="toy", version=1)
    again = store.save(estimator, model_name="toy", version=1)

    assert (again.path, again.sha256) == (first.path, first.sha256)
    assert (first.created, again.created) == (True, False)
    assert files_under(store.root) == [first.path]


def test_other_bytes_under_the_same_name_are_refused_and_never_overwritten(
    store: ArtifactStore, estimator: LogisticRegression
) -> None:
    stored = store.save(estimator, model_name="toy", version=1)
    target = store.root / stored.path
    target.write_bytes(target.read_bytes() + b"marker")

    with pytest.raises(ArtifactExistsError, match="other contents") as refused:
        store.save(estimator, model_name="toy", version=1)

    assert "\n" not in str(refused.value)
    assert target.read_bytes().endswith(b"marker")
    assert files_under(store.root) == [stored.path]


def test_different_content_for_the_same_version_gets_its_own_file(
    store: ArtifactStore, estimator: LogisticRegression
) -> None:
    first = store.save(estimator, model_name="toy", version=1)
    second = store.save(LogisticRegression(C=0.5), model_name="toy", version=1)

    assert first.path != second.path
    assert files_under(store.root) == sorted([first.path, second.path])


def test_import_file_copies_the_bytes_and_never_overwrites(
    store: ArtifactStore, estimator: LogisticRegression, tmp_path: Path
) -> None:
    source = tmp_path / "upload.joblib"
    joblib.dump(estimator, source)

    imported = store.import_file(source, model_name="b", version=7)

    assert imported == StoredArtifact(f"b/v7-{imported.sha256[:12]}.joblib", sha256_of(source))
    assert (store.root / imported.path).read_bytes() == source.read_bytes()
    assert not store.import_file(source, model_name="b", version=7).created
    assert files_under(store.root) == [imported.path]


def test_load_refuses_tampered_bytes_naming_both_digests(
    store: ArtifactStore, estimator: LogisticRegression
) -> None:
    stored = store.save(estimator, model_name="toy", version=1)
    target = store.root / stored.path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    with pytest.raises(ArtifactIntegrityError) as raised:
        store.load(stored.path, stored.sha256)

    assert stored.sha256 in str(raised.value)
    assert sha256_of(target) in str(raised.value)


def test_resolve_returns_the_absolute_path_of_a_stored_file(
    store: ArtifactStore, estimator: LogisticRegression
) -> None:
    stored = store.save(estimator, model_name="toy", version=1)

    resolved = store.resolve(stored.path)

    assert resolved.is_absolute()
    assert resolved == (store.root / stored.path).resolve()


@pytest.mark.parametrize("path", ["../x", "toy/../../x", "", "toy/missing.joblib"])
def test_resolve_refuses_escapes_and_missing_files(store: ArtifactStore, path: str) -> None:
    (store.root / "toy").mkdir(parents=True)
    (store.root.parent / "x").write_bytes(b"outside")

    with pytest.raises(ArtifactPathError):
        store.resolve(path)


def test_resolve_refuses_absolute_paths(store: ArtifactStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.joblib"
    outside.write_bytes(b"outside")

    with pytest.raises(ArtifactPathError, match="relative"):
        store.resolve(str(outside))


def test_resolve_and_load_refuse_a_symlink_pointing_out_of_the_root(
    store: ArtifactStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.joblib"
    outside.write_bytes(b"outside")
    (store.root / "toy").mkdir(parents=True)
    (store.root / "toy" / "link.joblib").symlink_to(outside)

    with pytest.raises(ArtifactPathError, match="outside"):
        store.resolve("toy/link.joblib")
    with pytest.raises(ArtifactPathError):
        store.load("toy/link.joblib", sha256_of(outside))


def test_save_refuses_a_model_directory_symlinked_out_of_the_root(
    store: ArtifactStore, estimator: LogisticRegression, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store.root.mkdir()
    (store.root / "toy").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(ArtifactPathError):
        store.save(estimator, model_name="toy", version=1)

    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("model_name", "version"), [("../toy", 1), ("a/b", 1), (".hidden", 1), ("toy", 0)]
)
def test_save_rejects_unsafe_names_and_versions(
    store: ArtifactStore, estimator: LogisticRegression, model_name: str, version: int
) -> None:
    with pytest.raises(ValueError, match=r"model name|version"):
        store.save(estimator, model_name=model_name, version=version)
