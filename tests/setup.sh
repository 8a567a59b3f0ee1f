#!/usr/bin/env bash
# Installs what the test suite needs that a fresh machine of this kind lacks
# (the lab needs iproute2 and nftables; identification tests start real
# servers from Debian packages). Idempotent; run as root.
set -euo pipefail
pkgs=(iproute2 nftables chromium chromium-driver fonts-wqy-microhei poppler-utils time openssh-server nginx-light redis-server memcached vsftpd busybox-static openssl ufw iptables etcd-server influxdb prometheus dnsmasq-base snmpd chrony nmap buildah podman runc binutils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Kubernetes manifests are validated against the 1.30 schemas (tests/k8s.rs).
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install -q kubernetes-validate >/dev/null
fi
