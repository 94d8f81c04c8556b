#!/usr/bin/env bash
# Create bench/.litellm-venv with LiteLLM's proxy pinned to the version the performance floor was measured with.
# Idempotent: does nothing when the venv already has that version. The venv is gitignored.
set -euo pipefail
VERSION="1.106.2"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.litellm-venv"
PY="${PYTHON:-python3}"
# Importing litellm fetches a model price map from the internet unless told to use its bundled copy.
export LITELLM_LOCAL_MODEL_COST_MAP=True

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$VERSION" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
import litellm.proxy.proxy_server  # noqa: F401  (the proxy extra is importable)
sys.exit(0 if version("litellm") == sys.argv[1] else 1)
PYEOF
then
  echo "litellm $VERSION already installed in $VENV"
  exit 0
fi

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "litellm[proxy]==$VERSION"
"$VENV/bin/python" -c "import litellm.proxy.proxy_server" >/dev/null
echo "litellm $VERSION installed in $VENV"
