#!/usr/bin/env bash
# Installs what histocr needs from the operating system, when it is missing.
# Running as root it installs with apt-get; otherwise it says what to install and fails.
set -euo pipefail

missing=()
command -v tesseract >/dev/null || missing+=(tesseract-ocr)
if command -v tesseract >/dev/null; then
  langs=$(tesseract --list-langs 2>/dev/null || true)
  grep -qx deu <<<"$langs" || missing+=(tesseract-ocr-deu)
  grep -qx Fraktur <<<"$langs" || missing+=(tesseract-ocr-script-frak)
else
  missing+=(tesseract-ocr-deu tesseract-ocr-script-frak)
fi
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
if [[ "${1:-}" == "--test" ]]; then
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  [[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
  command -v pg_isready >/dev/null || missing+=(postgresql-client)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  # llama-cpp-python is compiled once per machine for the llama.cpp integration test.
  command -v cmake >/dev/null || missing+=(cmake)
  command -v g++ >/dev/null || missing+=(g++)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "histocr needs these system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
