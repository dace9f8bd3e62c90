# Shared by the dev scripts: installs what a fresh Debian machine lacks.
# Sourced, not run.

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# ensure_apt PKG... installs the Debian packages that are missing, with one apt-get update.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_dotnet() {
  if ! command -v dotnet >/dev/null 2>&1; then
    echo "The .NET SDK 10 is required (dotnet on PATH)." >&2
    exit 1
  fi
}

# Packages the services need at run time, and what publishing the agent with Native AOT links
# with (clang, zlib1g-dev; the agent benchmarks publish it).
RUNTIME_PACKAGES=(postgresql qemu-system-x86 qemu-utils ovmf clang zlib1g-dev)
