"""The model store: models in Hugging Face format, one folder each, with a manifest of
checksums, shared by every node (it lives under the platform root, on NFS in a fleet).

    from cluster.store import ModelStore
    store = ModelStore()
    store.path("smollm2-135m-instruct")      # models/smollm2-135m-instruct
"""

from cluster.store.manifest import FileEntry, Manifest
from cluster.store.store import ModelStore, StoreError

__all__ = ["FileEntry", "Manifest", "ModelStore", "StoreError"]
