"""Commands that share runs: export (Parquet, RO-Crate, PROV-JSON, archive) and import."""

from __future__ import annotations

from pathlib import Path

import click

from .common import PathWithoutNul, friendly_errors, open_store, store_option


@click.command()
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "--parquet",
    "parquet_dir",
    type=PathWithoutNul(file_okay=False, path_type=Path),
    help="Folder of the Parquet datasets (TABLE/run_id=ID/part-0.parquet).",
)
@click.option(
    "--ro-crate",
    "crate_path",
    type=PathWithoutNul(path_type=Path),
    help="A Workflow Run RO-Crate (Provenance Run Crate 0.5): a folder, or FILE.zip.",
)
@click.option(
    "--prov-json",
    "prov_path",
    type=PathWithoutNul(dir_okay=False, path_type=Path),
    help="A W3C PROV-JSON document (one run).",
)
@click.option(
    "--archive",
    "archive_path",
    type=PathWithoutNul(dir_okay=False, path_type=Path),
    help="A provenance archive (zip) that 'provtask import' loads into another store.",
)
@click.option(
    "--inline-limit",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="RO-Crate: include artifacts up to this many bytes as files (others by hash).",
)
@click.option("--license", "license_", help="RO-Crate: the license of the crate (a URL).")
@store_option
@friendly_errors
def export(
    run_refs: tuple[str, ...],
    parquet_dir: Path | None,
    crate_path: Path | None,
    prov_path: Path | None,
    archive_path: Path | None,
    inline_limit: int,
    license_: str | None,
    store_path: Path,
) -> None:
    """Export runs: Parquet datasets, an RO-Crate, PROV-JSON or an archive (docs/sharing.md)."""
    chosen = [p for p in (parquet_dir, crate_path, prov_path, archive_path) if p is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --parquet, --ro-crate, --prov-json, --archive")
    store = open_store(store_path)
    runs = list(run_refs)
    if parquet_dir is not None:
        from ..analysis.export import export_parquet

        counts = export_parquet(store, runs, parquet_dir)
        click.echo(", ".join(f"{table}: {rows} rows" for table, rows in counts.items()))
    elif crate_path is not None:
        from ..sharing.rocrate_export import PROFILE_VERSION, export_rocrate

        counts = export_rocrate(
            store, runs, crate_path, inline_limit=inline_limit, license=license_
        )
        click.echo(
            f"Provenance Run Crate {PROFILE_VERSION} at {crate_path}: "
            + ", ".join(f"{name}: {n}" for name, n in counts.items())
        )
    elif prov_path is not None:
        if len(runs) != 1:
            raise click.UsageError("--prov-json writes one run; give one RUN")
        from ..sharing.prov_export import export_prov

        counts = export_prov(store, runs[0], prov_path)
        click.echo(
            f"PROV-JSON at {prov_path}: {counts['activities']} activities, "
            f"{counts['entities']} entities"
        )
    else:
        from ..sharing.archive import export_archive

        counts = export_archive(store, runs, archive_path)
        size = archive_path.stat().st_size
        click.echo(
            f"archive {archive_path} ({size} bytes): "
            + ", ".join(f"{table}: {rows}" for table, rows in counts.items())
        )


@click.command(name="import")
@click.argument("archive", type=PathWithoutNul(exists=True, dir_okay=False, path_type=Path))
@store_option
@friendly_errors
def import_command(archive: Path, store_path: Path) -> None:
    """Add the runs of a provenance archive to the store (created if missing), all or
    nothing, after checking every artifact against its hash."""
    from ..store import Store
    from ..store.archive import import_archive

    summary = import_archive(Store(store_path), archive)
    click.echo(
        f"imported run(s) {', '.join(summary.runs)} into {store_path}: "
        f"{summary.artifacts} new artifact(s), {summary.artifact_bytes} bytes; "
        + ", ".join(f"{table}: {rows}" for table, rows in summary.rows.items())
    )
