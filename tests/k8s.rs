//! Kubernetes for real: the shipped manifests validate against the 1.30
//! schemas; the image built by `deploy/container/build.sh` runs them under
//! podman in the lab's scanner namespace (each container's command, args,
//! env and volume mounts taken from the YAML, a host directory per volume,
//! `JOB_COMPLETION_INDEX` set as Kubernetes sets it); the merged audit of
//! the signed shard bundles equals a single-process audit; the CronJob's
//! second run shows drift. Then signed bundles and their failure cases with
//! the binary itself: unsigned, foreign, edited, cut, incomplete, missing,
//! repeated, mixed bundles, a scan stopped mid-way, a rerun index.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lab::Lab;
use crate::prereq;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
/// The image every manifest must name (the one build.sh tags).
const IMAGE: &str = concat!("portwarden:", env!("CARGO_PKG_VERSION"));

pub(crate) fn tempdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("pw-k8s-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every document of a manifest, as JSON values.
pub(crate) fn manifest(file: &str) -> Vec<Value> {
    let path = Path::new(DEPLOY).join(file);
    let t = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&t)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .collect()
}

pub(crate) fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the manifest"))
}

pub(crate) fn containers(pod: &Value) -> Vec<&Value> {
    let mut v: Vec<&Value> = pod["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    v.extend(pod["containers"].as_array().into_iter().flatten());
    v
}

#[test]
fn manifests_validate_against_kubernetes_1_30_and_name_the_built_image() {
    let files = ["cronjob.yaml", "indexed-job.yaml"];
    for f in files {
        for d in manifest(f) {
            let pod = match d["kind"].as_str() {
                Some("Job") => &d["spec"]["template"]["spec"],
                Some("CronJob") => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                _ => continue,
            };
            assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{f}");
            for c in containers(pod) {
                assert_eq!(c["image"], IMAGE, "{f}: {}", c["name"]);
                let caps = &c["securityContext"]["capabilities"];
                assert_eq!(caps["drop"], serde_json::json!(["ALL"]), "{f}");
                for add in caps["add"].as_array().into_iter().flatten() {
                    assert_eq!(add, "NET_RAW", "{f}: only NET_RAW may be added");
                }
                // An import audits what its files recorded: no -p beside it.
                let args = c["args"][0].as_str().unwrap_or_default();
                let audit = args.find("portwarden audit").map(|i| &args[i..]);
                if let Some(audit) = audit
                    .and_then(|a| a.split("rc=").next())
                    .filter(|a| a.contains("--from-jsonl"))
                {
                    assert!(
                        !audit.contains(" -p ") && !audit.contains("$SCOPE"),
                        "{f}: {audit}"
                    );
                }
            }
        }
    }
    if !have("kubernetes-validate") {
        return prereq::missing(
            "kubernetes-validate (pip install kubernetes-validate; tests/setup.sh)",
        );
    }
    let o = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.30"])
        .args(files.map(|f| Path::new(DEPLOY).join(f)))
        .output()
        .expect("run kubernetes-validate");
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    // Every object passed (a file of nothing would pass too).
    let passed = text(&o.stdout)
        .lines()
        .chain(text(&o.stderr).lines())
        .filter(|l| l.contains(" passed "))
        .count();
    let objects: usize = files.iter().map(|f| manifest(f).len()).sum();
    assert_eq!(passed, objects, "{}{}", text(&o.stdout), text(&o.stderr));
}

/// A pod of a manifest, run under podman: each volume a host directory.
struct PodRun<'a> {
    pod: &'a Value,
    netns: &'a str,
    /// Volume name → host directory.
    volumes: BTreeMap<String, PathBuf>,
    /// ConfigMap name → its data, for env `configMapKeyRef`.
    config: BTreeMap<String, BTreeMap<String, String>>,
    /// Extra env (JOB_COMPLETION_INDEX).
    env: Vec<(String, String)>,
}

const PODMAN: [&str; 4] = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"];
/// Limits below this machine's (podman's defaults exceed them).
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=4096:4096",
    "--ulimit",
    "nproc=4096:4096",
];

impl PodRun<'_> {
    /// `podman run` of one container, as the kubelet would start it.
    fn command(&self, c: &Value) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(PODMAN).args(["run", "--rm", "--network"]);
        cmd.arg(format!("ns:/run/netns/{}", self.netns));
        cmd.args(ULIMITS);
        let psc = &self.pod["securityContext"];
        let user = psc["runAsUser"].as_u64().expect("runAsUser");
        let group = psc["runAsGroup"].as_u64().unwrap_or(user);
        cmd.arg("--user").arg(format!("{user}:{group}"));
        if let Some(g) = psc["fsGroup"].as_u64() {
            cmd.arg("--group-add").arg(g.to_string());
        }
        let sc = &c["securityContext"];
        if sc["readOnlyRootFilesystem"] == true {
            cmd.arg("--read-only");
        }
        if sc["allowPrivilegeEscalation"] == false {
            cmd.args(["--security-opt", "no-new-privileges"]);
        }
        for d in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
            cmd.arg("--cap-drop")
                .arg(d.as_str().unwrap().to_lowercase());
        }
        for a in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            cmd.arg("--cap-add").arg(a.as_str().unwrap());
        }
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap();
            let value = match e["value"].as_str() {
                Some(v) => v.to_string(),
                None => {
                    let r = &e["valueFrom"]["configMapKeyRef"];
                    let cm = &self.config[r["name"].as_str().unwrap()];
                    cm[r["key"].as_str().unwrap()].clone()
                }
            };
            cmd.arg("-e").arg(format!("{name}={value}"));
        }
        for (k, v) in &self.env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let host = &self.volumes[m["name"].as_str().unwrap()];
            let ro = if m["readOnly"] == true { ":ro" } else { "" };
            cmd.arg("-v").arg(format!(
                "{}:{}{ro}",
                host.display(),
                m["mountPath"].as_str().unwrap()
            ));
        }
        let command: Vec<&str> = c["command"]
            .as_array()
            .expect("command")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        cmd.arg("--entrypoint").arg(command[0]);
        cmd.arg(c["image"].as_str().unwrap());
        cmd.args(&command[1..]);
        for a in c["args"].as_array().into_iter().flatten() {
            cmd.arg(a.as_str().unwrap());
        }
        cmd
    }

    /// Runs the pod's init containers, then its containers; the exit code
    /// of the last one.
    fn run(&self) -> Output {
        let mut last = None;
        for c in containers(self.pod) {
            let o = self.command(c).output().expect("run podman");
            if !o.status.success() {
                return o;
            }
            last = Some(o);
        }
        last.expect("a container")
    }

    fn spawn(&self) -> std::process::Child {
        let c = containers(self.pod);
        assert_eq!(c.len(), 1, "a scan pod has one container");
        self.command(c[0])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run podman")
    }
}

/// A host directory standing in for a volume, owned as the pod's fsGroup.
fn volume(root: &Path, name: &str, files: &[(&str, &[u8], u32)]) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (f, bytes, mode) in files {
        let p = d.join(f);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let o = Command::new("chown")
        .args(["-R", "0:65532"])
        .arg(&d)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2775)).unwrap();
    d
}

pub(crate) fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let o = Command::new(Lab::bin())
        .args(["keygen", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    (
        dir.join("portwarden-signing.key"),
        dir.join("portwarden-signing.pub"),
    )
}

/// What two audits must share: observations (without times), findings
/// and verdicts, and the history scope.
#[derive(Debug, PartialEq)]
struct Verdicts {
    observations: BTreeSet<String>,
    findings: Value,
    scope_key: String,
}

fn verdicts(report: &Path, store: &Path) -> Verdicts {
    let obs = std::fs::read_to_string(report.join("observations.jsonl")).unwrap();
    let observations = obs
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {} {} {} {}",
                v["ip"], v["port"], v["proto"], v["state"], v["reason"], v["service"]["name"]
            )
        })
        .collect();
    let mut findings: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("findings.json")).unwrap())
            .unwrap();
    findings.as_object_mut().unwrap().remove("policy");
    // When each probe answered is not a verdict.
    for f in findings["findings"].as_array_mut().unwrap() {
        if let Some(e) = f["evidence"].as_object_mut() {
            e.remove("time");
        }
    }
    let o = Command::new(Lab::bin())
        .args(["history", "list", "--format", "json", "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let runs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let last = runs
        .as_array()
        .and_then(|r| r.last())
        .expect("a recorded run");
    Verdicts {
        observations,
        findings,
        scope_key: last["scope_key"].as_str().unwrap().to_string(),
    }
}

/// The checks whose evidence is the internet vantage: a merged audit
/// judges them per host from the bundles that scanned it (internet bundles
/// only), a single process from its one vantage, so they differ by design.
const INTERNET_CHECKS: [&str; 2] = ["remote-admin-internet", "database-internet"];

/// `v` without the internet checks' findings, coverage and port verdicts.
fn without_internet(v: &Verdicts) -> Verdicts {
    let mut findings = v.findings.clone();
    let keep = |x: &Value| !INTERNET_CHECKS.contains(&x["check"].as_str().unwrap_or(""));
    findings["findings"]
        .as_array_mut()
        .unwrap()
        .retain(|f| keep(f));
    for g in findings["coverage"].as_array_mut().unwrap() {
        g["checks"].as_array_mut().unwrap().retain(|c| keep(c));
    }
    for p in findings["ports"].as_array_mut().unwrap() {
        p["checks_fired"]
            .as_array_mut()
            .unwrap()
            .retain(|c| !INTERNET_CHECKS.contains(&c.as_str().unwrap_or("")));
    }
    Verdicts {
        observations: v.observations.clone(),
        findings,
        scope_key: v.scope_key.clone(),
    }
}

/// The merged audit judged the internet checks from the internet bundle
/// only: they ran on the v6 hosts it scanned, not on the v4 ones, and
/// their findings are all on v6 addresses.
fn assert_internet_from_internet_bundle(merged: &Verdicts, v6_hosts: u64) {
    for g in merged.findings["coverage"].as_array().unwrap() {
        // The hosts in no group: none here.
        if g["hosts"] == 0 {
            continue;
        }
        for c in g["checks"].as_array().unwrap() {
            if !INTERNET_CHECKS.contains(&c["check"].as_str().unwrap()) {
                continue;
            }
            assert_eq!(c["hosts"], v6_hosts, "{c}");
            assert_eq!(c["of"], g["hosts"], "{c}");
            let why = c["reason"].as_str().unwrap();
            assert!(
                why.starts_with("scanned only from vantage internal (198.18.0.1")
                    && why.ends_with(", none a proven internet vantage"),
                "{why}"
            );
        }
    }
    let internet: Vec<&Value> = merged.findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| INTERNET_CHECKS.contains(&f["check"].as_str().unwrap()))
        .collect();
    assert!(!internet.is_empty());
    for f in internet {
        assert!(f["ip"].as_str().unwrap().contains(':'), "{f}");
    }
}

/// Field by field, naming the first difference (a whole dump is too long to read).
fn assert_same(merged: &Verdicts, direct: &Verdicts) {
    let only_merged: Vec<_> = merged
        .observations
        .difference(&direct.observations)
        .take(5)
        .collect();
    let only_direct: Vec<_> = direct
        .observations
        .difference(&merged.observations)
        .take(5)
        .collect();
    assert!(
        only_merged.is_empty() && only_direct.is_empty(),
        "observations differ: merged only {only_merged:?}, direct only {only_direct:?}"
    );
    for (k, v) in merged.findings.as_object().unwrap() {
        let w = &direct.findings[k];
        if v != w {
            let first = match (v.as_array(), w.as_array()) {
                (Some(a), Some(b)) if a.len() == b.len() => a
                    .iter()
                    .zip(b)
                    .find(|(x, y)| x != y)
                    .map(|(x, y)| format!("{x}\n  vs {y}")),
                (Some(a), Some(b)) => Some(format!("{} vs {} entries", a.len(), b.len())),
                _ => Some(format!("{v} vs {w}")),
            };
            panic!("findings.json '{k}' differs: {}", first.unwrap_or_default());
        }
    }
    assert_eq!(merged.scope_key, direct.scope_key, "history scope");
}

fn podman_ready() -> bool {
    for tool in ["podman", "buildah", "runc", "busybox", "strip"] {
        if !have(tool) {
            prereq::missing(&format!(
                "{tool} (apt-get install buildah podman runc busybox-static binutils; tests/setup.sh)"
            ));
            return false;
        }
    }
    true
}

/// Builds the image with deploy/container/build.sh (the ONE image build of
/// the suite) and checks what the issue asks of it.
fn build_image(work: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let archive = work.join("portwarden.tar");
    let o = Command::new(Path::new(root).join("deploy/container/build.sh"))
        .arg("--oci-archive")
        .arg(&archive)
        .current_dir(root)
        .output()
        .expect("run build.sh");
    assert_eq!(code(&o), 0, "build.sh: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), IMAGE);
    // The exported archive is an OCI image layout.
    let o = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l == "index.json" || l == "./index.json"),
        "{}",
        text(&o.stdout)
    );
    let inspect = |f: &str| {
        let o = Command::new("podman")
            .args(["image", "inspect", "--format", f, IMAGE])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        text(&o.stdout).trim().to_string()
    };
    // The archive loads back as the same image (README: `podman load -i`).
    let o = Command::new("podman")
        .args(["load", "-i"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(IMAGE), "{}", text(&o.stdout));
    // The README's push: skopeo into a registry on loopback, and dir:.
    crate::k8s_readme::archive_reaches_a_registry(&archive, IMAGE, work);
    assert_eq!(inspect("{{.Config.User}}"), "65532:65532");
    let size: u64 = inspect("{{.Size}}").parse().unwrap();
    eprintln!("image {IMAGE}: {size} bytes ({:.1} MB)", size as f64 / 1e6);
    assert!(size <= 30_000_000, "image is {size} bytes, over 30 MB");
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .unwrap();
    let rev = text(&rev.stdout).trim().to_string();
    let o = Command::new("podman")
        .args(PODMAN)
        .args(["run", "--rm", "--network", "none"])
        .args(ULIMITS)
        .args([IMAGE, "--version"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let version = text(&o.stdout);
    assert!(
        version.contains(&format!("(git {rev}")),
        "{version} lacks {rev}"
    );
}

/// The scope and the lab the manifests scan: the internal shards take the
/// v4 /24, the internet-side Job the v6 /120.
fn k8s_lab() -> Lab {
    Lab::standard()
}

#[test]
fn image_runs_the_shipped_manifests_in_the_lab() {
    if !podman_ready() {
        return;
    }
    let work = tempdir("image");
    build_image(&work);
    let lab = k8s_lab();
    let docs = manifest("indexed-job.yaml");
    let mut shards_cm: BTreeMap<String, String> =
        serde_json::from_value(object(&docs, "ConfigMap", "portwarden-shards")["data"].clone())
            .unwrap();
    // The lab's addresses replace the example scope, as the manifest says.
    let ports = lab.ports_arg();
    shards_cm.insert("scope".into(), lab.v4_prefix().unwrap());
    shards_cm.insert("internet-scope".into(), lab.v6_prefix().unwrap());
    shards_cm.insert("ports".into(), ports.clone());
    let n: u64 = shards_cm["shards"].parse().unwrap();
    let seed = shards_cm["seed"].clone();
    let scan_job = object(&docs, "Job", "portwarden-scan-shards");
    assert_eq!(scan_job["spec"]["completionMode"], "Indexed");
    assert_eq!(scan_job["spec"]["completions"], n);

    // Keys in Secrets, their public halves beside the policy.
    let keys = work.join("keys");
    let (int_key, int_pub) = keygen(&keys.join("internal"));
    let (net_key, net_pub) = keygen(&keys.join("internet"));
    let policy = format!(
        "[[group]]\nname = \"lab\"\ntargets = [\"{}\", \"{}\"]\n\n\
         [[scanner]]\nname = \"k8s-internal\"\nvantage = \"internal\"\npubkey = \"internal.pub\"\n\n\
         [[scanner]]\nname = \"k8s-internet\"\nvantage = \"internet\"\npubkey = \"internet.pub\"\n",
        lab.v4_prefix().unwrap(),
        lab.v6_prefix().unwrap()
    );
    let read = |p: &Path| std::fs::read(p).unwrap();
    let vols = work.join("vols");
    let data = volume(&vols, "data", &[]);
    let policy_dir = volume(
        &vols,
        "policy",
        &[
            ("policy.toml", policy.as_bytes(), 0o644),
            ("internal.pub", &read(&int_pub), 0o644),
            ("internet.pub", &read(&net_pub), 0o644),
        ],
    );
    let shards_dir = volume(
        &vols,
        "shards",
        &shards_cm
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes(), 0o644))
            .collect::<Vec<_>>(),
    );
    let secret_int = volume(
        &vols,
        "secret-internal",
        &[("portwarden-signing.key", &read(&int_key), 0o440)],
    );
    let secret_net = volume(
        &vols,
        "secret-internet",
        &[("portwarden-signing.key", &read(&net_key), 0o440)],
    );
    let config: BTreeMap<String, BTreeMap<String, String>> =
        [("portwarden-shards".to_string(), shards_cm.clone())].into();
    let pod_volumes = |pod: &Value, tmp: &Path| -> BTreeMap<String, PathBuf> {
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let name = v["name"].as_str().unwrap().to_string();
                let host = if v["persistentVolumeClaim"].is_object() {
                    data.clone()
                } else if v["emptyDir"].is_object() {
                    volume(tmp, &name, &[])
                } else if let Some(s) = v["secret"]["secretName"].as_str() {
                    match s {
                        "portwarden-scanner-internal" => secret_int.clone(),
                        "portwarden-scanner-internet" => secret_net.clone(),
                        other => panic!("unknown Secret {other}"),
                    }
                } else {
                    match v["configMap"]["name"].as_str().unwrap() {
                        "portwarden-shards" => shards_dir.clone(),
                        "portwarden-policy" => policy_dir.clone(),
                        other => panic!("unknown ConfigMap {other}"),
                    }
                };
                (name, host)
            })
            .collect()
    };

    // The Indexed Job: N pods at once, JOB_COMPLETION_INDEX = 0…N-1.
    let pod = &scan_job["spec"]["template"]["spec"];
    let t0 = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|i| {
            let run = PodRun {
                pod,
                netns: lab.scanner_ns(),
                volumes: pod_volumes(pod, &work.join(format!("tmp-{i}"))),
                config: config.clone(),
                env: vec![("JOB_COMPLETION_INDEX".into(), i.to_string())],
            };
            run.spawn()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "shard pod: {}", text(&o.stderr));
    }
    let sharded = t0.elapsed();
    // The same pod as one shard of one (SHARDS=1), on a volume of its own:
    // the single-process scan of the same scope, for the wall-time figure.
    let mut one_cm = shards_cm.clone();
    one_cm.insert("shards".into(), "1".into());
    let mut one_vols = pod_volumes(pod, &work.join("tmp-one"));
    one_vols.insert("data".into(), volume(&vols, "data-one", &[]));
    let t0 = Instant::now();
    let o = PodRun {
        pod,
        netns: lab.scanner_ns(),
        volumes: one_vols,
        config: [("portwarden-shards".to_string(), one_cm)].into(),
        env: vec![("JOB_COMPLETION_INDEX".into(), "0".into())],
    }
    .run();
    let unsharded = t0.elapsed();
    assert_eq!(code(&o), 0, "one-shard pod: {}", text(&o.stderr));
    // The internet-side Job.
    let net_job = object(&docs, "Job", "portwarden-scan-internet");
    assert_eq!(net_job["metadata"]["labels"]["vantage"], "internet");
    let pod = &net_job["spec"]["template"]["spec"];
    let o = PodRun {
        pod,
        netns: lab.scanner_ns(),
        volumes: pod_volumes(pod, &work.join("tmp-net")),
        config: config.clone(),
        env: vec![],
    }
    .run();
    assert_eq!(code(&o), 0, "internet pod: {}", text(&o.stderr));
    let run_dir = data.join("run");
    let mut names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..n)
        .flat_map(|i| [format!("shard-{i}.jsonl"), format!("shard-{i}.jsonl.sig")])
        .collect();
    want.extend(["internet.jsonl".into(), "internet.jsonl.sig".into()]);
    want.sort();
    assert_eq!(
        names, want,
        "only the bundles and their signatures, no temporary file"
    );
    let bundles: Vec<PathBuf> = want
        .iter()
        .filter(|f| f.ends_with(".jsonl"))
        .map(|f| run_dir.join(f))
        .collect();
    let bundle_copy = work.join("bundles");
    std::fs::create_dir_all(&bundle_copy).unwrap();
    for f in &want {
        std::fs::copy(run_dir.join(f), bundle_copy.join(f)).unwrap();
    }

    // The merged audit Job (its wait-for-bundles init container first).
    let audit_job = object(&docs, "Job", "portwarden-audit-merged");
    let pod = &audit_job["spec"]["template"]["spec"];
    let o = PodRun {
        pod,
        netns: lab.scanner_ns(),
        volumes: pod_volumes(pod, &work.join("tmp-audit")),
        config: config.clone(),
        env: vec![],
    }
    .run();
    assert_eq!(
        code(&o),
        0,
        "audit pod: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(
        !run_dir.join("shard-0.jsonl").exists(),
        "the audit archives the run's bundles"
    );
    let merged = verdicts(&data.join("report"), &data.join("history.db"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("report/report.json")).unwrap())
            .unwrap();
    let listed = report.to_string();
    for b in &bundles {
        let name = b.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            listed.contains(&format!("/data/run/{name}")),
            "report lists {name}"
        );
    }
    assert!(
        listed.contains("\"scanner\":\"k8s-internet\"")
            && listed.contains("\"scanner\":\"k8s-internal\""),
        "{listed}"
    );

    // The same scope, policy and seed in one process (the same image).
    let single = volume(&vols, "single", &[]);
    let pod_single = serde_json::json!({
        "securityContext": pod["securityContext"],
        "volumes": [{"name": "policy", "configMap": {"name": "portwarden-policy"}}, {"name": "data", "persistentVolumeClaim": {"claimName": "x"}}],
    });
    let c = serde_json::json!({
        "name": "single", "image": IMAGE, "command": ["/bin/sh", "-c"],
        "args": [format!("portwarden audit {} {} -p {ports} --seed {seed} --policy /etc/portwarden/policy.toml --store /data/history.db --out /data/report; [ $? -le 1 ]", lab.v4_prefix().unwrap(), lab.v6_prefix().unwrap())],
        "securityContext": scan_job["spec"]["template"]["spec"]["containers"][0]["securityContext"],
        "volumeMounts": [{"name": "policy", "mountPath": "/etc/portwarden", "readOnly": true}, {"name": "data", "mountPath": "/data"}],
    });
    let mut vols_single = pod_volumes(&pod_single, &work.join("tmp-single"));
    vols_single.insert("data".into(), single.clone());
    let t1 = Instant::now();
    let o = PodRun {
        pod: &pod_single,
        netns: lab.scanner_ns(),
        volumes: vols_single,
        config: config.clone(),
        env: vec![],
    }
    .command(&c)
    .output()
    .unwrap();
    let one = t1.elapsed();
    assert_eq!(code(&o), 0, "single audit: {}", text(&o.stderr));
    let direct = verdicts(&single.join("report"), &single.join("history.db"));
    let open = merged
        .observations
        .iter()
        .filter(|o| o.contains(" \"open\" "))
        .count();
    assert_eq!(
        open,
        lab.open_pairs().len(),
        "every open pair of the lab, once"
    );
    // The same but for the internet checks, which the merged audit judged
    // from the internet bundle (the v6 hosts) only.
    let v6_hosts = merged
        .observations
        .iter()
        .filter(|o| o.starts_with("\"2001:") && !o.contains(" \"filtered\" "))
        .map(|o| o.split(' ').next().unwrap().to_string())
        .collect::<BTreeSet<_>>()
        .len() as u64;
    assert_internet_from_internet_bundle(&merged, v6_hosts);
    assert_same(&without_internet(&merged), &without_internet(&direct));
    eprintln!(
        "wall time of the scan: {n} shard pods in parallel {sharded:?}, one pod {unsharded:?}; the single-process audit of both vantages' scope {one:?}"
    );

    cronjob_twice_shows_drift(&work, &policy_dir);
    drop(lab);
    let _ = std::fs::remove_dir_all(&work);
    let _ = Duration::ZERO;
}

/// The CronJob's audit on one store twice; the second run sees the port
/// opened between them.
fn cronjob_twice_shows_drift(work: &Path, _policy: &Path) {
    let docs = manifest("cronjob.yaml");
    let cron = object(&docs, "CronJob", "portwarden-audit");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let vols = work.join("cron");
    let net = "198.19.7.0/29";
    let policy = format!("[[group]]\nname = \"cron\"\ntargets = [\"{net}\"]\n");
    let policy_dir = volume(
        &vols,
        "policy",
        &[("policy.toml", policy.as_bytes(), 0o644)],
    );
    let data = volume(&vols, "data", &[]);
    let host: IpAddr = "198.19.7.3".parse().unwrap();
    for (round, extra) in [(1, None), (2, Some(8080u16))] {
        let mut b = Lab::builder()
            .v4_prefix(net)
            .ports(&[22, 8080])
            .open(host, 22);
        if let Some(p) = extra {
            b = b.open(host, p);
        }
        let lab = b.build();
        let volumes: BTreeMap<String, PathBuf> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let name = v["name"].as_str().unwrap().to_string();
                let d = if v["configMap"].is_object() {
                    policy_dir.clone()
                } else {
                    data.clone()
                };
                (name, d)
            })
            .collect();
        let o = PodRun {
            pod,
            netns: lab.scanner_ns(),
            volumes,
            config: BTreeMap::new(),
            env: vec![],
        }
        .run();
        assert_eq!(
            code(&o),
            0,
            "cron run {round}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        let drift = data.join("report/drift.json");
        if round == 1 {
            assert!(!drift.exists(), "a first run has no drift");
        } else {
            let d: Value = serde_json::from_str(&std::fs::read_to_string(&drift).unwrap()).unwrap();
            let opened: Vec<(String, u64)> = d["opened"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        o["ip"].as_str().unwrap().to_string(),
                        o["port"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(opened, vec![(host.to_string(), 8080)], "{d}");
        }
    }
}

/// Quick connect-scan flags (no seed: each test gives its own).
pub(crate) const QUICK: [&str; 8] = [
    "--scan",
    "connect",
    "--retries",
    "0",
    "--timeout-initial",
    "300",
    "--timeout-max",
    "300",
];

/// Keys, a policy that trusts two scanners, and a small lab.
struct Bundles {
    lab: Lab,
    dir: PathBuf,
    internal: PathBuf,
    internet: PathBuf,
    foreign: PathBuf,
    policy: PathBuf,
}

const NET: &str = "198.19.6.0/28";

fn bundles_fixture(tag: &str) -> Bundles {
    let mut b = Lab::builder().v4_prefix(NET).ports(&[22, 80]);
    for (h, p) in [(2u8, 22u16), (5, 80), (9, 22), (14, 80)] {
        b = b.open(IpAddr::from([198, 19, 6, h]), p);
    }
    let lab = b.build();
    let dir = tempdir(tag);
    let (internal, int_pub) = keygen(&dir.join("k-internal"));
    let (internet, net_pub) = keygen(&dir.join("k-internet"));
    let (foreign, _) = keygen(&dir.join("k-foreign"));
    std::fs::copy(&int_pub, dir.join("internal.pub")).unwrap();
    std::fs::copy(&net_pub, dir.join("internet.pub")).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[group]]\nname = \"lab\"\ntargets = [\"{NET}\"]\n\n\
             [[scanner]]\nname = \"k8s-internal\"\nvantage = \"internal\"\npubkey = \"internal.pub\"\n\n\
             [[scanner]]\nname = \"k8s-internet\"\nvantage = \"internet\"\npubkey = \"internet.pub\"\n"
        ),
    )
    .unwrap();
    Bundles {
        lab,
        dir,
        internal,
        internet,
        foreign,
        policy,
    }
}

impl Bundles {
    /// `scan NET -p P --shard S --seed SEED --vantage V --sign-key K -o FILE`.
    fn scan(
        &self,
        file: &str,
        shard: &str,
        seed: &str,
        ports: &str,
        vantage: &str,
        key: &Path,
    ) -> PathBuf {
        let out = self.dir.join(file);
        let o = self.lab.run(
            &[
                &[
                    "scan",
                    NET,
                    "-p",
                    ports,
                    "--shard",
                    shard,
                    "--seed",
                    seed,
                    "--vantage",
                    vantage,
                    "--sign-key",
                    key.to_str().unwrap(),
                    "-o",
                    out.to_str().unwrap(),
                ][..],
                &QUICK[..],
            ]
            .concat(),
        );
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        out
    }

    /// Two signed shards of the internal vantage.
    fn shards(&self) -> (PathBuf, PathBuf) {
        (
            self.scan(
                "shard-0.jsonl",
                "0/2",
                "11",
                "22,80",
                "internal",
                &self.internal,
            ),
            self.scan(
                "shard-1.jsonl",
                "1/2",
                "11",
                "22,80",
                "internal",
                &self.internal,
            ),
        )
    }

    fn audit(&self, files: &[&Path], extra: &[&str]) -> Output {
        let out = tempdir("audit-out").join("r");
        Command::new(Lab::bin())
            .args(["audit", "--no-store", "--policy"])
            .arg(&self.policy)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .arg("--from-jsonl")
            .args(files)
            .env_remove("PORTWARDEN_STORE")
            .output()
            .unwrap()
    }

    /// A copy of `file` (and its signature) under `name`.
    fn copy(&self, file: &Path, name: &str, sig: bool) -> PathBuf {
        let to = self.dir.join(name);
        std::fs::copy(file, &to).unwrap();
        if sig {
            std::fs::copy(sig_of(file), sig_of(&to)).unwrap();
        }
        to
    }
}

fn sig_of(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", p.display()))
}

/// Asserts exit 2 and that the error names `file` and says `why`.
fn refused(o: &Output, file: &Path, why: &str) {
    let err = text(&o.stderr);
    assert_eq!(code(o), 2, "{err}");
    assert!(
        err.contains(&file.display().to_string()),
        "names {}: {err}",
        file.display()
    );
    assert!(err.contains(why), "says {why:?}: {err}");
}

#[test]
fn signed_bundles_merge_and_every_bad_one_is_refused_by_name() {
    let f = bundles_fixture("signed");
    let (s0, s1) = f.shards();
    // The bundle: header first, summary last, a signature beside it.
    let t = std::fs::read_to_string(&s0).unwrap();
    let lines: Vec<Value> = t
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (head, tail) = (&lines[0], &lines[lines.len() - 1]);
    assert_eq!(head["type"], "header");
    assert_eq!(head["scope"]["targets"], serde_json::json!([NET]));
    assert_eq!(head["scope"]["ports"], "22,80");
    assert_eq!(head["seed"], 11);
    assert_eq!(head["shard"], serde_json::json!({"index": 0, "count": 2}));
    assert_eq!(head["vantage"]["name"], "internal");
    assert_eq!(
        head["vantage"]["sources"],
        serde_json::json!(["198.18.0.1"])
    );
    assert!(
        head["version"]
            .as_str()
            .unwrap()
            .starts_with(env!("CARGO_PKG_VERSION"))
    );
    assert!(head["started"].as_str().unwrap() <= head["finished"].as_str().unwrap());
    assert_eq!(tail["type"], "summary");
    assert_eq!(tail["complete"], true);
    assert_eq!(
        tail["observations"].as_u64().unwrap() as usize,
        lines.len() - 2
    );
    let sig: Value = serde_json::from_str(&std::fs::read_to_string(sig_of(&s0)).unwrap()).unwrap();
    assert_eq!(sig["algorithm"], "ed25519");
    assert_eq!(sig["signed_file"], "shard-0.jsonl");

    // Both shards verified and listed in the report's scope.
    let out = f.dir.join("merged");
    let o = Command::new(Lab::bin())
        .args(["audit", "--no-store", "--policy"])
        .arg(&f.policy)
        .arg("--out")
        .arg(&out)
        .arg("--from-jsonl")
        .args([&s0, &s1])
        .output()
        .unwrap();
    assert!(code(&o) <= 1, "{}", text(&o.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let inputs = report.to_string();
    for want in [
        "\"scanner\":\"k8s-internal\"",
        "\"index\":0",
        "\"index\":1",
        &format!("\"key_fingerprint\":{}", sig["public_key_fingerprint"]),
    ] {
        assert!(inputs.contains(want), "report lacks {want}: {inputs}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for i in 0..2 {
        let want =
            format!("bundle: k8s-internal; vantage internal 198.18.0.1; shard {i}/2 (seed 11)");
        assert!(html.contains(&want), "index.html lacks {want}");
    }
    let open: BTreeSet<String> = std::fs::read_to_string(out.join("observations.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["state"] == "open")
        .map(|v| format!("{}:{}", v["ip"].as_str().unwrap(), v["port"]))
        .collect();
    assert_eq!(
        open,
        [
            "198.19.6.14:80",
            "198.19.6.2:22",
            "198.19.6.5:80",
            "198.19.6.9:22"
        ]
        .map(String::from)
        .into()
    );

    // Unsigned.
    let unsigned = f.copy(&s1, "unsigned.jsonl", false);
    refused(&f.audit(&[&s0, &unsigned], &[]), &unsigned, "unsigned");
    // Signed by a key the policy does not know.
    let foreign = f.scan(
        "foreign.jsonl",
        "1/2",
        "11",
        "22,80",
        "internal",
        &f.foreign,
    );
    refused(&f.audit(&[&s0, &foreign], &[]), &foreign, "unknown key");
    // A trusted key claiming another scanner's vantage.
    let wrong = f.scan("wrong.jsonl", "1/2", "11", "22,80", "internet", &f.internal);
    refused(
        &f.audit(&[&wrong], &[]),
        &wrong,
        "declared for vantage 'internal'",
    );
    // Edited: one state changed, the line count kept.
    let edited = f.copy(&s1, "edited.jsonl", true);
    let t = std::fs::read_to_string(&edited).unwrap().replacen(
        "\"state\":\"closed\"",
        "\"state\":\"open\"",
        1,
    );
    std::fs::write(&edited, t).unwrap();
    refused(&f.audit(&[&s0, &edited], &[]), &edited, "edited");
    // Truncated: the summary cut off.
    let cut = f.copy(&s1, "cut.jsonl", true);
    let t = std::fs::read_to_string(&cut).unwrap();
    let keep: Vec<&str> = t.lines().collect();
    std::fs::write(&cut, format!("{}\n", keep[..keep.len() - 1].join("\n"))).unwrap();
    refused(&f.audit(&[&s0, &cut], &[]), &cut, "truncated");
    // --allow-partial-import lets none of these through.
    refused(
        &f.audit(&[&s0, &cut], &["--allow-partial-import"]),
        &cut,
        "truncated",
    );
    refused(
        &f.audit(&[&s0, &edited], &["--allow-partial-import"]),
        &edited,
        "edited",
    );
    // Plain JSONL where the policy trusts scanners.
    let plain = f.dir.join("plain.jsonl");
    let o = f.lab.run(
        &[
            &[
                "scan",
                NET,
                "-p",
                "22,80",
                "--format",
                "jsonl",
                "-o",
                plain.to_str().unwrap(),
            ][..],
            &QUICK[..],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    refused(&f.audit(&[&plain], &[]), &plain, "not a signed bundle");
}

#[test]
fn bundle_sets_refuse_missing_repeated_and_mixed_shards() {
    let f = bundles_fixture("sets");
    let (s0, s1) = f.shards();
    // A missing index: shards 0 and 1 of 3.
    let t0 = f.scan(
        "three-0.jsonl",
        "0/3",
        "11",
        "22,80",
        "internal",
        &f.internal,
    );
    let t1 = f.scan(
        "three-1.jsonl",
        "1/3",
        "11",
        "22,80",
        "internal",
        &f.internal,
    );
    let o = f.audit(&[&t0, &t1], &[]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("shard 2/3 of vantage 'internal' is missing"),
        "{}",
        text(&o.stderr)
    );
    // The same shard twice.
    let again = f.copy(&s0, "again.jsonl", true);
    let o = f.audit(&[&s0, &again, &s1], &[]);
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(
        err.contains("are both shard 0/2 of vantage 'internal'") && err.contains("again.jsonl"),
        "{err}"
    );
    // Another seed.
    let seed = f.scan("seed.jsonl", "1/2", "12", "22,80", "internal", &f.internal);
    let o = f.audit(&[&s0, &seed], &[]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("different seeds 11 and 12"),
        "{}",
        text(&o.stderr)
    );
    // Another scope.
    let ports = f.scan("ports.jsonl", "1/2", "11", "22", "internal", &f.internal);
    let o = f.audit(&[&s0, &ports], &[]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("different scopes"),
        "{}",
        text(&o.stderr)
    );
    // Two vantages are two scans: the internet-side bundle joins the shards.
    let net = f.scan(
        "internet.jsonl",
        "0/1",
        "5",
        "22,80",
        "internet",
        &f.internet,
    );
    let o = f.audit(&[&s0, &s1, &net], &[]);
    assert!(code(&o) <= 1, "{}", text(&o.stderr));
}

#[test]
fn a_scan_stopped_mid_way_leaves_an_incomplete_bundle_the_audit_refuses() {
    let f = bundles_fixture("stopped");
    let (s0, _) = f.shards();
    // Shard 1 of a slow scan (16 probes at 1 a second), stopped as
    // Kubernetes stops a pod (SIGTERM) long before it is over.
    let stopped = f.dir.join("shard-1.jsonl");
    let child = f
        .lab
        .command(Lab::bin())
        .args([
            "scan",
            NET,
            "-p",
            "22,80",
            "--shard",
            "1/2",
            "--seed",
            "11",
            "--rate",
            "1",
            "--vantage",
            "internal",
            "--sign-key",
        ])
        .arg(&f.internal)
        .arg("-o")
        .arg(&stopped)
        .args(QUICK)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 130, "{}", text(&o.stderr));
    let t = std::fs::read_to_string(&stopped).unwrap();
    let last: Value = serde_json::from_str(t.lines().last().unwrap()).unwrap();
    assert_eq!(last["complete"], false, "{last}");
    assert!(
        sig_of(&stopped).exists(),
        "a stopped scan's bundle is signed too"
    );
    refused(
        &f.audit(&[&s0, &stopped], &[]),
        &stopped,
        "incomplete: shard 1/2 of vantage 'internal'",
    );
    // --allow-partial-import lets it through, and says so.
    let o = f.audit(&[&s0, &stopped], &["--allow-partial-import"]);
    assert!(code(&o) <= 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("partial import") || text(&o.stderr).contains("partial import"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

#[test]
fn rerunning_a_failed_index_rewrites_only_its_own_bundle() {
    let f = bundles_fixture("rerun");
    let (s0, s1) = f.shards();
    let before0 = (
        std::fs::read(&s0).unwrap(),
        std::fs::read(sig_of(&s0)).unwrap(),
    );
    let before1 = std::fs::read(&s1).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let again = f.scan(
        "shard-1.jsonl",
        "1/2",
        "11",
        "22,80",
        "internal",
        &f.internal,
    );
    assert_eq!(again, s1);
    assert_eq!(
        (
            std::fs::read(&s0).unwrap(),
            std::fs::read(sig_of(&s0)).unwrap()
        ),
        before0,
        "shard 0 untouched"
    );
    assert_ne!(std::fs::read(&s1).unwrap(), before1, "shard 1 rewritten");
    let mut names: Vec<String> = std::fs::read_dir(&f.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("shard"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "shard-0.jsonl",
            "shard-0.jsonl.sig",
            "shard-1.jsonl",
            "shard-1.jsonl.sig"
        ],
        "no temporary file left"
    );
    let o = f.audit(&[&s0, &s1], &[]);
    assert!(code(&o) <= 1, "{}", text(&o.stderr));
    let _ = &f.internet;
}
