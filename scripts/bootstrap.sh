# Shared by run.sh, test.sh and .ci/run: install Debian packages and the virtual environment.
# Sourced, not run; expects to be in the repository root.

# Install the named Debian packages that are missing (we run as root on the target machines).
ensure_debian_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "Not root: install them with: sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Pick Python 3.11 or newer.
find_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "kjdms needs Python 3.11 or newer" >&2
  return 1
}

# Create .venv and install kjdms with the given extras; reinstall only when pyproject.toml changed.
ensure_venv() {
  local extras="$1" python stamp
  python=$(find_python)
  if ! "$python" -c 'import ensurepip' 2>/dev/null; then
    ensure_debian_packages "python3-venv"
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  stamp=".venv/.installed${extras:+-$extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
    touch "$stamp"
  fi
}

# The Debian packages the application needs at run time.
# fonts-wqy-microhei: the CJK font embedded in the printed documents (kjdms/documents/base.py);
# fonts-hanazono, fonts-babelstone-han: its fallbacks for names in the ideograph extensions (A-H).
# tesseract-ocr-chi-sim: OCR of scanned documents for search (kjdms/documents/text.py); it only recommends
# tesseract-ocr, which --no-install-recommends skips, so the engine is named too.
RUNTIME_PACKAGES=(libmagic1 fonts-wqy-microhei fonts-hanazono fonts-babelstone-han tesseract-ocr tesseract-ocr-chi-sim)
# And those its tests need besides.
# chromium: the browser tests/e2e drives through Playwright (executable_path=/usr/bin/chromium).
TEST_PACKAGES=("${RUNTIME_PACKAGES[@]}" chromium chromium-l10n poppler-utils)  # pdftoppm renders the statistics PDF in tests;
# chromium-l10n: the browser's own strings in Chinese in the e2e screenshots (a file input's 选择文件)
