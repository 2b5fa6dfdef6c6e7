"""Job sources: local folders, git repositories and OCI add-on images whose jobs join
the catalog as ``<source>/<id>``. See ``_lifecycle`` for one registration (shared by a
server's registry and a CLI change), ``_registry`` for the actors, ``_allow`` for the
allow-list, ``_oci`` and ``_manifest`` for add-ons, ``_trees`` for who may delete a
checkout."""

from ._allow import AllowList as AllowList
from ._index import SourceIndex as SourceIndex
from ._index import index_source as index_source
from ._lifecycle import Blocking as Blocking
from ._lifecycle import check_location as check_location
from ._lifecycle import in_thread as in_thread
from ._lifecycle import index_and_save as index_and_save
from ._lifecycle import inline as inline
from ._lifecycle import registration as registration
from ._lifecycle import source_document as source_document
from ._manifest import AddonManifest as AddonManifest
from ._manifest import parse_manifest as parse_manifest
from ._materialise import materialise as materialise
from ._merge import merge as merge
from ._model import PULL_POLICY_SPELLINGS as PULL_POLICY_SPELLINGS
from ._model import Source as Source
from ._model import SourceSpec as SourceSpec
from ._model import SourceState as SourceState
from ._model import parse_request as parse_request
from ._model import pull_policy_named as pull_policy_named
from ._oci import OciContext as OciContext
from ._oci import extraction_argv as extraction_argv
from ._registry import Add as Add
from ._registry import Entry as Entry
from ._registry import PinDigest as PinDigest
from ._registry import Refresh as Refresh
from ._registry import Remove as Remove
from ._registry import SourceBook as SourceBook
from ._registry import SourcesActor as SourcesActor
from ._registry import SourcesConfig as SourcesConfig
from ._registry import SourcesMessage as SourcesMessage
from ._registry import pinned_trees as pinned_trees
from ._store import delete_source as delete_source
from ._store import load_sources as load_sources
from ._store import read_replica_sources as read_replica_sources
from ._store import record_digest as record_digest
from ._store import save_source as save_source
from ._trees import TreeLease as TreeLease
from ._trees import delete_tree as delete_tree
from ._trees import lease_checkout as lease_checkout
from ._trees import sweep as sweep
from ._trees import sweep_source as sweep_source
