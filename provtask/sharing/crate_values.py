"""Values in a crate: run params, task inputs and outputs (artifacts), each an entity named
by its hash, so one task's output is the very entity a downstream attempt has as object."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .crate_common import add_entity, artifact_bytes, literal, sha256

if TYPE_CHECKING:
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    from ..store import Store
    from .crate_workflow import Workflow


class Values:
    """Entities of values, added once per hash."""

    def __init__(
        self,
        store: Store,
        crate: ROCrate,
        workflow: Workflow,
        scratch: Path,
        inline_limit: int,
        counts: dict[str, int],
    ) -> None:
        self.store, self.crate, self.workflow, self.scratch = store, crate, workflow, scratch
        self.inline_limit, self.counts = inline_limit, counts
        self.by_hash: dict[str, Any] = {}  # artifact hash -> entity

    def param_value(self, run_id: str, name: str, value: Any) -> ContextEntity:
        entity = self._add(
            f"#run/{run_id}/param/{name}",
            {"@type": "PropertyValue", "name": name, "value": literal(value)},
        )
        slot = self.workflow.params.get(name)
        if slot is not None:
            entity["exampleOfWork"] = slot
            slot.append_to("workExample", entity)
        return entity

    def input_value(self, run_id: str, task: Any, entry: dict[str, Any]) -> Any:
        """What an input was: an upstream task's output, a run param, or a literal."""
        slot = self.workflow.slot(task.name, entry["name"], "input")
        if "task" in entry and "item" not in entry:
            value = self.artifact(entry["hash"], None)
        elif "param" in entry:
            value = self.crate.get(f"#run/{run_id}/param/{entry['param']}")
        else:
            described = entry.get("repr") or f"element {entry['item']} of {entry['task']}'s output"
            value = self._add(
                f"#value/{entry['hash']}",
                {
                    "@type": "PropertyValue",
                    "name": entry["name"],
                    "value": described,
                    "identifier": f"provtask-value-hash:{entry['hash']}",
                },
            )
        if value is not None:
            value.append_to("exampleOfWork", slot)
            slot.append_to("workExample", value)
        return value

    def artifact(self, hash_: str, slot: ContextEntity | None) -> Any:
        """An output value: a File of its artifact's bytes if small enough, else a
        PropertyValue naming its hash; a Path value also references the file with its hash."""
        entity = self.by_hash.get(hash_)
        if entity is None:
            entity = self._new_artifact(hash_)
            self.by_hash[hash_] = entity
        if slot is not None:
            entity.append_to("exampleOfWork", slot)
            slot.append_to("workExample", entity)
        return entity

    def _new_artifact(self, hash_: str) -> Any:
        row = self.store.conn.execute(
            "SELECT size, serializer, type, preview FROM artifacts WHERE hash = ?", (hash_,)
        ).fetchone()
        size, serializer, kind, preview = row if row else (None, None, None, None)
        common = {
            "identifier": f"blake2b-256:{hash_}",
            "description": preview,
            "additionalType": kind,
            "contentSize": str(size) if size is not None else None,
        }
        if row is not None and size <= self.inline_limit:
            scratch = self.scratch / hash_
            scratch.write_bytes(artifact_bytes(self.store, hash_))
            self.counts["inlined"] += 1
            entity = self.crate.add_file(
                scratch,
                dest_path=f"artifacts/{hash_}.{serializer}",
                properties={
                    **common,
                    "name": f"artifact {hash_[:12]}",
                    "encodingFormat": "application/x-python-pickle",
                },
            )
        else:
            entity = self._add(
                f"#artifact/{hash_}",
                {
                    "@type": "PropertyValue",
                    "name": f"artifact {hash_[:12]}",
                    "value": preview,
                    **common,
                },
            )
        if kind in ("pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.Path") and preview:
            self._referenced_file(entity, hash_)
        return entity

    def _referenced_file(self, entity: Any, hash_: str) -> None:
        """A Path value: the file it names, with its SHA-256 as found at export."""
        from ..store.artifacts import load_verified

        path = Path(load_verified(artifact_bytes(self.store, hash_), hash_))
        properties: dict[str, Any] = {"@type": "File", "name": path.name}
        if path.is_file():
            data = path.read_bytes()
            properties |= {"sha256": sha256(data), "contentSize": str(len(data))}
        else:
            properties["description"] = "the file was not there when the crate was written"
        file = self._add(path.absolute().as_uri(), properties)
        self.crate.root_dataset.append_to("hasPart", file)
        entity["about"] = file

    def _add(self, identifier: str, properties: dict[str, Any]) -> ContextEntity:
        return add_entity(self.crate, identifier, properties)
