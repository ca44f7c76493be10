"""Make `ansible_collections.lazypull.snapshotters` importable for plain pytest.

`make venv` links the repository into .build/collections; inside an
ansible-test tree the repository already sits at ansible_collections/NS/NAME.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

if REPO.parent.parent.name == "ansible_collections":
    _root = REPO.parent.parent.parent
else:
    _root = REPO / ".build" / "collections"
if str(_root) not in sys.path:
    sys.path.insert(0, str(_root))
