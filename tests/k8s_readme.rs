//! The README's Kubernetes lines that can run without a cluster:
//! * `kubectl create secret|configmap` (client side, `--dry-run=client`)
//!   make exactly the Secrets and the ConfigMap the shipped manifests mount,
//!   with the keys their containers read;
//! * `skopeo copy oci-archive:portwarden.tar docker://REGISTRY/…` pushes the
//!   archive `build.sh --oci-archive` exported to a registry (Debian's
//!   docker-registry on loopback) with the same manifest digest, and
//!   `dir:` takes a copy of it on disk.
//!
//! What cannot run here: `kubectl apply` (it needs an API server: none is
//! packaged in Debian 12), `kind load image-archive` (kind is not packaged,
//! and there is no container engine for its node), `k3s ctr images import`
//! (k3s is not packaged).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::k8s::{code, containers, keygen, manifest, object, tempdir, text};
use crate::lab::Lab;
use crate::prereq;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `tool` is on the PATH; else a missing prerequisite naming `pkg`.
pub(crate) fn have(tool: &str, pkg: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        prereq::missing(&format!("{tool} (apt-get install {pkg}; tests/setup.sh)"));
    }
    found
}

/// The README's Kubernetes section, up to the next `## ` heading.
fn section() -> String {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme
        .find("\n## Kubernetes\n")
        .expect("a Kubernetes section");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end].to_string()
}

/// The README's lines of the Kubernetes section that start with `prefix`
/// (its indented code), without the indentation.
fn readme_lines(prefix: &str) -> Vec<String> {
    section()
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// The README's indented code block of the Kubernetes section whose first
/// line is `first`, without the indentation, up to the next prose line.
pub(crate) fn readme_block(first: &str) -> String {
    let section = section();
    let at = section
        .find(&format!("\n    {first}\n"))
        .unwrap_or_else(|| panic!("no code block `{first}` in the README's Kubernetes section"));
    let mut out = String::new();
    for line in section[at + 1..].lines() {
        if !line.is_empty() && !line.starts_with("    ") {
            break;
        }
        out.push_str(line.strip_prefix("    ").unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Every `name` a manifest's volumes take from `kind` (`secretName` of a
/// Secret volume, `name` of a ConfigMap volume).
fn mounted(kind: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in ["indexed-job.yaml", "cronjob.yaml"] {
        for v in manifest(file) {
            collect(&v, kind, &mut out);
        }
    }
    out
}

/// The `portwarden …` command of a shell script, its continuation lines
/// joined, white space folded.
fn command_in(script: &str, start: &str) -> Option<String> {
    let mut out = String::new();
    let mut lines = script.lines().map(str::trim);
    let first = lines.by_ref().find(|l| l.starts_with(start))?;
    let mut line = first;
    loop {
        let more = line.ends_with('\\');
        out.push_str(line.trim_end_matches('\\'));
        out.push(' ');
        match (more, lines.next()) {
            (true, Some(l)) => line = l,
            _ => break,
        }
    }
    Some(out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The README's shard and audit commands are the ones the Indexed Job's
/// containers run (and the podman test runs those, from the YAML).
#[test]
fn readme_commands_are_the_manifests() {
    let docs = manifest("indexed-job.yaml");
    let script = |job: &str| -> String {
        let pod = &object(&docs, "Job", job)["spec"]["template"]["spec"];
        containers(pod)
            .iter()
            .flat_map(|c| c["args"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let readme = readme_block(
        "portwarden scan \"$SCOPE\" -p \"$PORTS\" --shard \"$JOB_COMPLETION_INDEX/$SHARDS\" --seed \"$SEED\" \\",
    );
    for (job, start) in [
        ("portwarden-scan-shards", "portwarden scan"),
        ("portwarden-audit-merged", "portwarden audit"),
    ] {
        let want =
            command_in(&script(job), start).unwrap_or_else(|| panic!("no `{start}` in Job {job}"));
        let said = command_in(&readme, start)
            .unwrap_or_else(|| panic!("no `{start}` in the README's block"));
        assert_eq!(said, want, "the README's {start} differs from Job {job}");
    }
    // The image lines k8s.rs `build_image` runs (with the archive in its
    // work directory).
    assert_eq!(
        readme_lines("deploy/container/build.sh")
            .iter()
            .chain(&readme_lines("podman load"))
            .map(|l| l.split(" #").next().unwrap().trim())
            .collect::<Vec<_>>(),
        [
            "deploy/container/build.sh --oci-archive portwarden.tar",
            "podman load -i portwarden.tar"
        ]
    );
    // `kubectl apply` needs an API server (none here): its line must at
    // least name the manifest the tests validate and run.
    let applies = readme_lines("kubectl apply -f ");
    assert_eq!(
        applies,
        ["kubectl apply -f deploy/kubernetes/indexed-job.yaml"]
    );
}

fn collect(v: &Value, kind: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (kind, k.as_str()) {
                    ("secret", "secret") => {
                        out.insert(x["secretName"].as_str().unwrap().to_string());
                    }
                    ("configMap", "configMap") => {
                        out.insert(x["name"].as_str().unwrap().to_string());
                    }
                    _ => collect(x, kind, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, kind, out)),
        _ => {}
    }
}

#[test]
fn readme_kubectl_lines_make_what_the_manifests_mount() {
    if !have("kubectl", "kubernetes-client") {
        return;
    }
    let dir = tempdir("kubectl");
    // `portwarden keygen --out keys/internal && portwarden keygen --out keys/internet`
    let keygen_line = readme_lines("portwarden keygen");
    assert_eq!(
        keygen_line,
        ["portwarden keygen --out keys/internal && portwarden keygen --out keys/internet"]
    );
    let (_, internal_pub) = keygen(&dir.join("keys/internal"));
    let (_, internet_pub) = keygen(&dir.join("keys/internet"));
    std::fs::copy(&internal_pub, dir.join("internal.pub")).unwrap();
    std::fs::copy(&internet_pub, dir.join("internet.pub")).unwrap();
    // The README's [[scanner]] entries, as written.
    let scanners = readme_block("[[scanner]]");
    assert_eq!(scanners.matches("[[scanner]]").count(), 2, "{scanners}");
    std::fs::write(dir.join("policy.toml"), scanners).unwrap();
    let o = Command::new(Lab::bin())
        .args(["policy", "check"])
        .arg(dir.join("policy.toml"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));

    let creates = readme_lines("kubectl create");
    assert_eq!(creates.len(), 3, "{creates:?}");
    let mut made: Vec<Value> = Vec::new();
    for line in &creates {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let o: Output = Command::new("kubectl")
            .args(&args)
            .args(["--dry-run=client", "-o", "json"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{line}: {}", text(&o.stderr));
        made.push(serde_json::from_slice(&o.stdout).unwrap());
    }
    let names = |kind: &str| -> BTreeSet<String> {
        made.iter()
            .filter(|m| m["kind"] == kind)
            .map(|m| m["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    // Exactly what the manifests mount (the shard settings ConfigMap is in
    // the manifest itself).
    assert_eq!(names("Secret"), mounted("secret"));
    let mut maps = names("ConfigMap");
    maps.insert("portwarden-shards".into());
    assert_eq!(maps, mounted("configMap"));
    let keys = |m: &Value| -> BTreeSet<String> {
        m["data"].as_object().unwrap().keys().cloned().collect()
    };
    for m in &made {
        match m["kind"].as_str().unwrap() {
            // The shard containers read /etc/portwarden-key/portwarden-signing.key.
            "Secret" => assert_eq!(keys(m), ["portwarden-signing.key".to_string()].into()),
            // The audit reads /etc/portwarden/policy.toml, whose scanners'
            // keys sit beside it.
            _ => assert_eq!(
                keys(m),
                ["internal.pub", "internet.pub", "policy.toml"]
                    .map(String::from)
                    .into()
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Debian's docker-registry on a loopback port, stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(work: &Path) -> Registry {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = work.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            work.join("registry").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry");
    let reg = Registry { child, addr };
    // Up once it answers the API root (bounded).
    for _ in 0..200 {
        if std::net::TcpStream::connect(&reg.addr).is_ok() {
            return reg;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("docker-registry did not listen on {}", reg.addr);
}

fn skopeo(args: &[&str]) -> String {
    let o = Command::new("skopeo").args(args).output().unwrap();
    assert_eq!(code(&o), 0, "skopeo {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// The README's `skopeo copy oci-archive:portwarden.tar docker://REGISTRY/
/// portwarden:<version>`, into a registry on loopback: the registry then
/// serves the same manifest digest; `dir:` copies it to disk.
pub(crate) fn archive_reaches_a_registry(archive: &Path, image: &str, work: &Path) {
    if !have("skopeo", "skopeo") || !have("docker-registry", "docker-registry") {
        return;
    }
    let src = format!("oci-archive:{}", archive.display());
    let reg = registry(work);
    let dest = format!("docker://{}/{image}", reg.addr);
    let line = format!("skopeo copy {src} {dest}");
    assert_eq!(
        readme_lines("skopeo copy"),
        [line
            .replace(&src, "oci-archive:portwarden.tar")
            .replace(&reg.addr, "REGISTRY")]
    );
    // Plain HTTP on loopback: no TLS to verify.
    skopeo(&["copy", "--dest-tls-verify=false", &src, &dest]);
    let pushed: Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &dest])).unwrap();
    let local: Value = serde_json::from_str(&skopeo(&["inspect", &src])).unwrap();
    assert_eq!(pushed["Digest"], local["Digest"]);
    assert_eq!(pushed["Layers"], local["Layers"]);
    let (_, tag) = image.split_once(':').unwrap();
    assert_eq!(pushed["RepoTags"], serde_json::json!([tag]));
    let dir = work.join("oci-dir");
    skopeo(&["copy", &src, &format!("dir:{}", dir.display())]);
    assert!(dir.join("manifest.json").is_file());
    for layer in local["Layers"].as_array().unwrap() {
        let hex = layer.as_str().unwrap().trim_start_matches("sha256:");
        assert!(dir.join(hex).is_file(), "layer {hex} not copied");
    }
}
