//! The heavy cases of the remediation tests, each in one test: the real
//! cloud CLIs parse every generated command against a dead endpoint, and
//! `terraform validate` checks every generated Terraform (AWS) snippet in
//! one configuration with the real provider.

use super::tests::{close, finding, groups, ssh};
use super::*;

/// True under `CI=true` (or `1`): a missing prerequisite fails, never skips.
fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A missing prerequisite: fails under CI, else says what was skipped.
fn missing(what: &str) {
    assert!(
        !strict(),
        "missing test prerequisite (CI=true forbids skipping): {what}"
    );
    eprintln!("SKIPPED: {what}");
}

/// Where tests/setup.sh's note installs the Azure CLI (a venv: pip's
/// azure-cli is about 730 MB and takes minutes, so it is optional).
const AZURE_VENV: &str = "/opt/azure-cli";

/// Fills the cloud placeholders with well-formed values.
fn fill_cloud(text: &str) -> String {
    let mut t = text.to_owned();
    for (k, v) in [
        ("<REGION>", "us-east-1"),
        ("<SECURITY_GROUP_ID>", "sg-0123456789abcdef0"),
        ("<SECURITY_GROUP_RULE_ID>", "sgr-0123456789abcdef0"),
        ("<RESOURCE_GROUP>", "pw-rg"),
        ("<NSG_NAME>", "pw-nsg"),
        ("<CIDR_OF_THE_REVOKED_RULE>", "0.0.0.0/0"),
        ("<PROJECT_ID>", "pw-project"),
        ("<NETWORK>", "default"),
        ("<TARGET_TAG>", "pw-target"),
        ("<PRIORITY_ALLOW>", "900"),
        ("<PRIORITY>", "1000"),
        ("<SECURITY_GROUP>", "pw-group"),
        ("<RULE_ID>", "0b4ee5c2-52c4-4b8f-9a6b-0d7a0b7f4c11"),
        ("<REMOTE_IP_OF_THE_DELETED_RULE>", "0.0.0.0/0"),
        ("<NAMESPACE>", "default"),
        ("<APP_LABEL>", "web"),
        ("<ALLOWED_PORT>", "443"),
    ] {
        t = t.replace(k, v);
        // In shell blocks the placeholder is a variable set at the top.
        let name = k.trim_matches(|c| c == '<' || c == '>');
        t = t.replace(&format!("{name}=''"), &format!("{name}='{v}'"));
    }
    t
}

/// Heavy, in one test: the real cloud CLIs parse every generated AWS, Google
/// Cloud and OpenStack command (run against a dead local endpoint: a
/// parameter error fails the test, a connection or credentials error passes
/// it), and kubernetes-validate --strict reads every NetworkPolicy. The
/// Azure CLI (`az`, on PATH or in the venv /opt/azure-cli that tests/setup.sh
/// documents: its install takes minutes, so it is optional) parses the Azure
/// commands when present: a parameter error exits 2, and a command that
/// parsed asks for `az login`. The Alibaba Cloud CLI installs from no
/// registry this machine reaches (not checked).
#[test]
fn cloud_commands_parse_with_the_real_clis() {
    let fs = [
        ssh("198.18.0.5"),
        ssh("2001:2::5"),
        close("198.18.1.3", 6379, "redis"),
        close("2001:2::9", 161, "snmp"),
    ];
    let gs = groups(&fs);
    let path = format!(
        "{}:{AZURE_VENV}/bin",
        std::env::var("PATH").unwrap_or_default()
    );
    let have = |p: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .env("PATH", &path)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let dir = std::env::temp_dir().join(format!("pw-cloud-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    // Each CLI runs for real; its verdict is logged: PARSE (a usage or
    // parameter error) fails the test.
    let prelude = format!(
        r#"LOG='{log}'
pwrun() {{ kind=$1; shift; out=$("$@" 2>&1); rc=$?
  case "$kind" in
    aws) case "$out" in *"Could not connect to the endpoint URL"*) echo "OK $kind" ;; *) echo "PARSE $kind rc=$rc $* :: $out" ;; esac ;;
    az) case "$rc:$out" in 1:*"az login"*) echo "OK $kind" ;; *) echo "PARSE $kind rc=$rc $* :: $out" ;; esac ;;
    *) if [ $rc -eq 2 ]; then echo "PARSE $kind rc=$rc $* :: $out"; else echo "OK $kind"; fi ;;
  esac >> "$LOG"; return 0; }}
aws() {{ pwrun aws command aws --endpoint-url http://127.0.0.1:9 --cli-connect-timeout 1 --cli-read-timeout 1 "$@"; }}
gcloud() {{ pwrun gcloud command gcloud --quiet "$@"; }}
openstack() {{ pwrun openstack command openstack "$@"; }}
az() {{ pwrun az command az "$@"; }}
"#,
        log = log.display()
    );
    let mut clis = vec![];
    for (cli, platform) in [
        ("aws", "aws"),
        ("gcloud", "gcp"),
        ("openstack", "openstack"),
        ("az", "azure"),
    ] {
        if have(cli) {
            clis.push(platform);
        } else if cli == "az" {
            eprintln!(
                "az not installed: the Azure commands are not parsed (optional; see tests/setup.sh)"
            );
        } else {
            assert!(
                std::env::var("CI").is_err(),
                "{cli} missing under CI (tests/setup.sh)"
            );
        }
    }
    let mut k8s = 0;
    for g in &gs {
        for p in &g.platforms {
            if clis.contains(&p.platform.as_str()) {
                for body in [&p.commands, &p.undo] {
                    let out = std::process::Command::new("bash")
                        .arg("-c")
                        .arg(format!("{prelude}\n{}", fill_cloud(body)))
                        .env("AWS_ACCESS_KEY_ID", "AKIAPORTWARDENTEST")
                        .env("AWS_SECRET_ACCESS_KEY", "portwarden")
                        .env("AWS_MAX_ATTEMPTS", "1")
                        .env("CLOUDSDK_CONFIG", dir.join("gcloud"))
                        .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
                        .env("OS_AUTH_URL", "http://127.0.0.1:9/v3")
                        .env("OS_USERNAME", "pw")
                        .env("OS_PASSWORD", "pw")
                        .env("OS_PROJECT_NAME", "pw")
                        .env("OS_USER_DOMAIN_NAME", "Default")
                        .env("OS_PROJECT_DOMAIN_NAME", "Default")
                        .env("PATH", &path)
                        .env("AZURE_CONFIG_DIR", dir.join("az"))
                        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}: {}",
                        p.platform,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            if p.platform == "kubernetes" && have("kubernetes-validate") {
                let file = dir.join(format!("np-{k8s}.yaml"));
                std::fs::write(&file, fill_cloud(&p.commands)).unwrap();
                let out = std::process::Command::new("kubernetes-validate")
                    .args(["--strict", "-k", "1.30.0"])
                    .arg(&file)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "kubernetes-validate: {}{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    p.commands
                );
                k8s += 1;
            }
        }
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let bad: Vec<&str> = logged.lines().filter(|l| l.starts_with("PARSE")).collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    for platform in &clis {
        let cli = match *platform {
            "gcp" => "gcloud",
            "azure" => "az",
            p => p,
        };
        assert!(
            logged.contains(&format!("OK {cli}")),
            "{cli} never ran:\n{logged}"
        );
    }
    eprintln!(
        "cloud CLIs checked: {clis:?}; NetworkPolicies: {k8s}; commands run: {}",
        logged.lines().count()
    );
}

/// The AWS provider of the local mirror: terraform's own layout,
/// `HOST/NAMESPACE/TYPE/VERSION/OS_ARCH`.
const TF_MIRROR: &str = "/opt/tf-plugins";
const TF_AWS: &str = "registry.terraform.io/hashicorp/aws";

/// Heavy, in one test: every Terraform (AWS) snippet of fixes on both
/// families, TCP and UDP, restrict and close, with and without declared
/// admin sources, combined into one configuration with the real AWS
/// provider (from the local filesystem mirror, nothing downloaded):
/// `terraform init -backend=false` and `terraform validate` must pass with
/// no error and no warning.
#[test]
fn terraform_aws_snippets_pass_terraform_validate() {
    let have_tf = std::process::Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mirror = Path::new(TF_MIRROR).join(TF_AWS);
    if !have_tf || !mirror.is_dir() {
        missing(&format!(
            "terraform on PATH and the AWS provider mirror {} (terraform {have_tf}, mirror {})",
            mirror.display(),
            mirror.is_dir()
        ));
        return;
    }
    let version = std::fs::read_dir(&mirror)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max()
        .expect("a provider version in the mirror");
    let fs = [
        ssh("198.18.0.5"),
        ssh("2001:2::5"),
        // db declares no admin sources: the placeholder path.
        close("198.18.1.2", 22, "ssh"),
        close("198.18.1.3", 6379, "redis"),
        close("2001:2::9", 161, "snmp"),
        finding(
            "database-internet",
            "restrict-source",
            "198.18.0.7",
            Some(5432),
            Some("postgresql"),
        ),
    ];
    let mut config = format!(
        "terraform {{\n  required_providers {{\n    aws = {{\n      source  = \"hashicorp/aws\"\n      version = \"{version}\"\n    }}\n  }}\n}}\n\nprovider \"aws\" {{\n  region = \"us-east-1\"\n}}\n"
    );
    let mut snippets = 0;
    let mut resources = 0;
    for g in groups(&fs) {
        for p in g.platforms.iter().filter(|p| p.platform == "terraform") {
            let text = fill_cloud(&p.commands).replace("<ADMIN_SOURCE_CIDR>", "198.18.9.0/24");
            resources += text.matches("\nresource ").count();
            config.push('\n');
            config.push_str(&text);
            config.push('\n');
            snippets += 1;
        }
    }
    assert!(
        snippets >= 6 && resources >= 3,
        "{snippets} snippets, {resources} resources"
    );
    let dir = std::env::temp_dir().join(format!("pw-tf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.tf"), &config).unwrap();
    std::fs::write(
        dir.join("cli.tfrc"),
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{TF_MIRROR}\"\n    include = [\"{TF_AWS}\"]\n  }}\n  direct {{\n    exclude = [\"{TF_AWS}\"]\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let tf = |args: &[&str]| {
        std::process::Command::new("terraform")
            .args(args)
            .current_dir(&dir)
            .env("TF_CLI_CONFIG_FILE", dir.join("cli.tfrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .output()
            .unwrap()
    };
    let init = tf(&["init", "-backend=false", "-input=false", "-no-color"]);
    assert!(
        init.status.success(),
        "terraform init: {}{}",
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr)
    );
    let validate = tf(&["validate", "-json", "-no-color"]);
    let out: serde_json::Value = serde_json::from_slice(&validate.stdout).unwrap_or_else(|e| {
        panic!(
            "terraform validate -json: {e}: {}",
            String::from_utf8_lossy(&validate.stderr)
        )
    });
    if std::env::var_os("PW_KEEP_TF").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_eq!(
        (&out["valid"], &out["error_count"], &out["warning_count"]),
        (&json!(true), &json!(0), &json!(0)),
        "terraform validate:\n{:#}\n{config}",
        out["diagnostics"]
    );
    eprintln!(
        "terraform validate: {snippets} snippets, {resources} resources, provider aws {version}"
    );
}
