#!/usr/bin/env bash
# Installs what the test suite needs that a fresh machine of this kind lacks
# (the lab needs iproute2 and nftables; identification tests start real
# servers from Debian packages). Idempotent; run as root.
set -euo pipefail
pkgs=(iproute2 nftables chromium chromium-driver fonts-wqy-microhei poppler-utils time openssh-server nginx-light redis-server memcached vsftpd busybox-static openssl ufw iptables firewalld ansible python3-yaml etcd-server influxdb prometheus dnsmasq-base snmpd chrony nmap man-db systemd buildah podman runc binutils dpkg-dev lintian libcap2-bin skopeo docker-registry)
missing=()
for p in "${pkgs[@]}"; do
  # "installed", not merely known (a removed package keeps its config files).
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# kubectl (the README's `kubectl create` lines, client side): Debian's, unless
# one is installed already (another package's /usr/bin/kubectl would clash).
if ! command -v kubectl >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi
# The real cloud CLIs and the Kubernetes schema check parse every generated fix
# (report::remediation::cloud_tests::cloud_commands_parse_with_the_real_clis); the
# schema check also validates deploy/kubernetes (tests/k8s.rs).
for p in awscli python-openstackclient kubernetes-validate; do
  pip show -q "$p" >/dev/null 2>&1 || pip install -q "$p" >/dev/null
done
# Optional, not installed here: the Azure CLI (pip's azure-cli is ~730 MB and took
# 3 min 26 s on this machine). When it is in /opt/azure-cli, the cloud-CLI test
# above parses the Azure commands too:
#   python3 -m venv /opt/azure-cli && /opt/azure-cli/bin/pip install -q azure-cli
# terraform (/usr/local/bin) and its AWS provider mirror (/opt/tf-plugins) come
# with the machine image: report::remediation::cloud_tests::terraform_aws_snippets_pass_terraform_validate
# fails under CI=true when either is missing.
