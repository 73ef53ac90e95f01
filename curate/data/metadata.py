"""`--metadata FILE.csv|parquet`: a team's own columns (site, vehicle, customer...) joined onto the items by path.

The file has a `path` column (relative to the image folder, or absolute inside it) and any others. Each of
those becomes a manifest column on the rows of that path: an image, and the objects and frames of that file
(they share its path). A metadata column can never replace one of curate's own (id, path, label, status,
the quality and EXIF columns...), so a metadata file cannot change ids or paths. A rescan reads the recorded
file again; its columns are replaced whole, so a column dropped from the file goes away.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

SUFFIXES = (".csv", ".parquet", ".pq")


class MetadataError(ValueError):
    """A metadata file that cannot be joined: the message names the file and what to change."""


def read_metadata(file: Path) -> pd.DataFrame:
    file = Path(file)
    if file.suffix.lower() not in SUFFIXES:
        raise MetadataError(f"--metadata {file}: a .csv or .parquet file, not {file.suffix or 'no extension'}")
    if not file.is_file():
        raise MetadataError(f"--metadata {file}: no such file")
    try:
        table = pd.read_parquet(file) if file.suffix.lower() != ".csv" else pd.read_csv(file, dtype={"path": str})
    except Exception as err:  # pandas and pyarrow raise many kinds on a bad file
        raise MetadataError(f"--metadata {file} cannot be read: {str(err).splitlines()[0][:200]}") from None
    if "path" not in table.columns:
        raise MetadataError(f"--metadata {file} has no `path` column (columns: {', '.join(map(str, table.columns))})")
    return table.convert_dtypes(dtype_backend="numpy_nullable")  # nullable columns: a missing value stays NA


def join_metadata(manifest: pd.DataFrame, table: pd.DataFrame, root: Path, file: Path,
                  previous_columns: list[str] = ()) -> tuple[pd.DataFrame, dict]:
    """(manifest with the metadata columns, {"file", "columns", "rows", "matched", "unmatched_examples"}).

    `previous_columns`: the columns the last join added (replaced now). Raises MetadataError for a column
    that would replace one of the manifest's own, for paths listed twice, and when no path matches."""
    manifest = manifest.drop(columns=[c for c in previous_columns if c in manifest.columns])
    columns = [c for c in table.columns if c != "path"]
    clashes = [str(c) for c in columns if c in manifest.columns]
    if clashes:
        raise MetadataError(f"--metadata {file}: column(s) {', '.join(clashes)} would replace curate's own; "
                            "rename them in the file (e.g. meta_" + clashes[0] + ")")
    keys = table["path"].astype(str).map(lambda p: relative_key(p, root))
    repeated = keys[keys.duplicated()].unique()
    if len(repeated):
        raise MetadataError(f"--metadata {file}: {len(repeated)} path(s) listed twice, e.g. {repeated[0]!r}; "
                            "give each file one row")
    known = set(manifest["path"].astype(str))
    hit = keys.isin(known).to_numpy()
    if not hit.any():
        example = manifest["path"].astype(str).iloc[0] if len(manifest) else "none"
        raise MetadataError(f"--metadata {file}: none of its {len(table):,} paths matches an item (its first: "
                            f"{keys.iloc[0]!r}; the manifest's first: {example!r}); paths are relative to {root}")
    extra = table.loc[hit, columns].set_axis(keys[hit].to_numpy())
    joined = manifest.join(extra, on="path")
    info = {"file": str(Path(file).resolve()), "columns": [str(c) for c in columns], "rows": int(len(table)),
            "matched": int(hit.sum()), "unmatched_examples": keys[~hit].head(5).tolist()}
    return joined, info


def relative_key(path: str, root: Path) -> str:
    """A metadata path as the manifest writes it: relative to `root`, '/'-separated, no './'."""
    text = path.strip().replace("\\", "/")
    if text.startswith("/"):
        try:
            text = PurePosixPath(text).relative_to(PurePosixPath(Path(root).resolve().as_posix())).as_posix()
        except ValueError:
            return text  # outside the folder: matches nothing, named among the unmatched
    return str(PurePosixPath(text)).removeprefix("./")
