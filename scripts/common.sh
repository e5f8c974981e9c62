# Shared by scripts/test and perf/run: installing Debian packages and configuring presets.
# Sourced, not run.

actnet_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
actnet_jobs=$(nproc 2>/dev/null || echo 2)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages named in "$@" that are missing. As root it runs apt-get; as
# anyone else it prints the exact command to run and stops.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages; run as root:  apt-get update && $cmd"
  fi
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install failed: $cmd"
}

# What every build needs.
build_packages=(cmake ninja-build g++ pkg-config libmimalloc-dev libconcurrentqueue-dev
                libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev liburing-dev libssl-dev
                prometheus-cpp-dev)
