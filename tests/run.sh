#!/usr/bin/env bash
# Runs every AkkaVna test on a fresh Debian machine: installs what the tests need when it is missing
# (dcmtk, Orthanc and its DICOMweb plugin, PostgreSQL, Ceph's radosgw, curl, util-linux and iproute2), then builds and tests
# the solution. PostgreSQL and Ceph are only installed: the tests start their own throwaway servers (PostgreSQL on a Unix
# socket as the postgres user; a Ceph monitor, OSD and radosgw on 127.0.0.1) and stop them; no system service is used.
# Needs root (or sudo) for apt-get. Usage: bash tests/run.sh [extra dotnet test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# tool -> Debian package. storescp cannot bind to loopback only, so the network tests run it inside a private
# network namespace (unshare from util-linux, ip from iproute2).
declare -A package=(
  [dcmdump]=dcmtk [dcm2json]=dcmtk [dcmodify]=dcmtk [storescu]=dcmtk [storescp]=dcmtk [echoscu]=dcmtk
  [findscu]=dcmtk [movescu]=dcmtk [getscu]=dcmtk
  [Orthanc]=orthanc [curl]=curl [nsenter]=util-linux
  [unshare]=util-linux [ip]=iproute2
  [ceph-mon]=ceph-mon [ceph-osd]=ceph-osd [radosgw]=radosgw [radosgw-admin]=radosgw [ceph]=ceph-common
  [ceph-authtool]=ceph-common [monmaptool]=ceph-common
  [opj_compress]=libopenjp2-tools [opj_decompress]=libopenjp2-tools [dciodvfy]=dicom3tools
  [ojph_compress]=openjph-tools [ojph_expand]=openjph-tools [g++]=g++
  [jing]=jing [stunnel4]=stunnel4
)
need=()
for tool in "${!package[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || need+=("${package[$tool]}")
done
# Orthanc's DICOMweb plugin (a STOW-RS client the tests use as a peer) is a file, not a command.
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
# PostgreSQL's server binaries (initdb, pg_ctl) live under /usr/lib/postgresql/VERSION/bin, not on the PATH.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# The codecs' native libraries (called through P/Invoke) are files too: CharLS for JPEG-LS, OpenJPEG for JPEG 2000 and
# HTJ2K, libjpeg-turbo for lossy JPEG decoding.
compgen -G "/usr/lib/*/libcharls.so.2" >/dev/null || need+=(libcharls2)
compgen -G "/usr/lib/*/libopenjp2.so.7" >/dev/null || need+=(libopenjp2-7)
compgen -G "/usr/lib/*/libturbojpeg.so.0" >/dev/null || need+=(libturbojpeg0)
# HTJ2K encoding: OpenJPH is C++, so the build compiles a small C face against its headers (with g++, above).
[ -f /usr/include/openjph/ojph_codestream.h ] || need+=(libopenjph-dev)
if [ ${#need[@]} -gt 0 ]; then
  need=($(printf '%s\n' "${need[@]}" | sort -u))
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # No service may start from a package's install script (PostgreSQL's would start a system cluster on port 5432).
  policy_rc=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null && $SUDO chmod +x /usr/sbin/policy-rc.d && policy_rc=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -n "$policy_rc" ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

if [ ! -d ../shared/corpus ] && [ -z "${AKKAVNA_CORPUS:-}" ]; then
  echo "the shared corpus is missing: expected ../shared/corpus beside the checkout (or set AKKAVNA_CORPUS)" >&2
  exit 2
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build AkkaVna.sln -c Release -m:1 --nologo -clp:ErrorsOnly
dotnet test AkkaVna.sln -c Release --no-build --nologo "$@"
